"""Short-lived access tokens: an open page keeps working across refreshes, in two tabs at once."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.adapter.conftest import serve_app
from tests.browser.conftest import app_status
from tests.browser.conftest import assert_clean
from tests.browser.conftest import assert_no_secrets
from tests.browser.conftest import expect_signed_in
from tests.browser.conftest import log_in
from tests.browser.conftest import session_id

OPEN_FOR = 12.0  # seconds of activity: four or more refreshes of a 3 s token


def _click_together(pages, clicks):
    """Click ``#whoami`` in every tab without waiting, then wait for every answer."""
    for tab in pages:
        tab.evaluate("document.getElementById('whoami').click()")
    answers = []
    for tab in pages:
        answer = tab.locator("#answer")
        expect(answer).to_contain_text(f"sub=alice groups=admins,analysts clicks={clicks} ")
        answers.append(answer.inner_text())
    return answers


def test_page_keeps_working_across_refreshes_in_two_tabs(idp, context, telemetry, shot):
    with serve_app(
        idp, access_token_ttl=3, refresh_lead_seconds=1, refresh_interval_seconds=1
    ) as running:
        first = context.new_page()
        target = log_in(first, running)
        second = context.new_page()
        second.goto(target)
        expect_signed_in(second)
        sid = session_id(context)
        tokens: set[str] = set()

        def keep_tokens():
            record = running.module.sessions.load(sid)
            assert record is not None, "the session ended while the page was open"
            token = record.token
            tokens.update(t for t in (token.access_token, token.refresh_token, token.id_token) if t)

        keep_tokens()
        clicks = 0
        deadline = time.monotonic() + OPEN_FOR
        while time.monotonic() < deadline:
            clicks += 1
            for answer in _click_together([first, second], clicks):
                expires_in = int(re.search(r"token_expires_in=(-?\d+)", answer).group(1))
                assert 0 <= expires_in <= 3, answer  # never an expired token in a callback
            keep_tokens()
            first.wait_for_timeout(600)
        shot(first, "tab-1")
        shot(second, "tab-2")

        refreshes = telemetry.events("audit_token_refresh")
        assert len(refreshes) >= 3, telemetry.event_types()
        assert all(e["refresh_token_rotated"] is True for e in refreshes), refreshes
        assert "token_refresh_error" not in repr(telemetry.audit)
        assert telemetry.events("audit_session_ended") == []
        assert len(telemetry.events("audit_session_started")) == 1
        assert session_id(context) == sid
        status = app_status(context, running)
        assert status["authenticated"] is True and status["error"] is None
        # Both tabs still work after the last refresh.
        first.wait_for_timeout(2500)
        _click_together([first, second], clicks + 1)
        for tab in (first, second):
            assert_clean(tab)
        keep_tokens()
        assert len(tokens) >= 2 * len(refreshes)  # every refresh rotated both tokens

        assert_no_secrets(
            tokens,
            telemetry=telemetry.exported_text(),
            first_href=first.evaluate("location.href"),
            second_href=second.evaluate("location.href"),
            first_html=first.content(),
            status=repr(status),
        )
