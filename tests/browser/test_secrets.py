"""No token, code or one-time handle of a run shows up in telemetry, pages or addresses."""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.adapter.conftest import serve_app
from tests.browser.conftest import app_status
from tests.browser.conftest import ask_whoami
from tests.browser.conftest import assert_no_secrets
from tests.browser.conftest import cancel_at_provider
from tests.browser.conftest import expect_error_page
from tests.browser.conftest import log_in
from tests.browser.conftest import poll
from tests.browser.conftest import session_id
from tests.browser.conftest import watch


def _tokens(running, sid):
    record = running.module.sessions.load(sid)
    assert record is not None
    token = record.token
    return {t for t in (token.access_token, token.refresh_token, token.id_token) if t}


def test_no_secret_in_telemetry_pages_or_addresses(idp, new_context, telemetry, shot):
    secrets: set[str] = set()
    texts: dict[str, str] = {}
    traffic = []

    def browser():
        context = new_context()
        traffic.append(watch(context))
        return context, context.new_page()

    with serve_app(
        idp, access_token_ttl=3, refresh_lead_seconds=1, refresh_interval_seconds=1
    ) as running:
        # A login, a callback, a token refresh while the page is open.
        context, page = browser()
        log_in(page, running)
        sid = session_id(context)
        secrets |= _tokens(running, sid)
        first_access = running.module.sessions.load(sid).token.access_token
        poll(page, lambda: running.module.sessions.load(sid).token.access_token != first_access)
        assert "sub=alice " in ask_whoami(page)
        secrets |= _tokens(running, sid)
        assert len(telemetry.events("audit_token_refresh")) >= 1
        texts["app_page"] = page.content()
        texts["app_href"] = page.evaluate("location.href")
        texts["status"] = repr(app_status(context, running))
        shot(page, "signed-in")

        # The same callback replayed in another browser: an error page.
        callback = next(u for u in traffic[0].urls() if "code=" in u)
        _, replay = browser()
        replay.goto(callback)
        texts["replay_page"] = expect_error_page(replay, running, "invalid_state")
        texts["replay_href"] = replay.evaluate("location.href")

        # A login cancelled at the provider: another error page.
        _, cancelled = browser()
        cancelled.goto(running.url + "/")
        cancel_at_provider(cancelled)
        texts["cancel_page"] = expect_error_page(cancelled, running, "access_denied")
        texts["cancel_href"] = cancelled.evaluate("location.href")
        shot(cancelled, "cancelled")

    with serve_app(idp, response_mode="form_post") as running:
        # form_post: the code travels in a POST body, then under a one-time handle.
        context, page = browser()
        log_in(page, running)
        secrets |= _tokens(running, session_id(context))
        handles = [
            dict(parse_qsl(urlsplit(u).query))["fp"] for u in traffic[-1].urls() if "fp=" in u
        ]
        assert len(handles) == 1
        secrets |= set(handles)
        texts["form_post_href"] = page.evaluate("location.href")
        page.goto(running.origin + running.module.url("callback") + "?fp=" + handles[0])
        expect(page.locator("#dash-oauth-error")).to_be_visible()
        texts["used_handle_page"] = expect_error_page(page, running, "invalid_callback_query")

    codes = {code for t in traffic for code in t.codes}
    assert len(codes) == 2  # one per completed login
    secrets |= codes
    assert_no_secrets(secrets, telemetry=telemetry.exported_text(), **texts)
