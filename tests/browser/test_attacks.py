"""Attacks on the login flow, carried out in real browsers."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import BINDING_COOKIE
from tests.browser.conftest import SESSION_COOKIE
from tests.browser.conftest import CallbackHold
from tests.browser.conftest import app_status
from tests.browser.conftest import ask_whoami
from tests.browser.conftest import cancel_at_provider
from tests.browser.conftest import cookie
from tests.browser.conftest import expect_error_page
from tests.browser.conftest import expect_signed_in
from tests.browser.conftest import log_in
from tests.browser.conftest import log_requests
from tests.browser.conftest import replace_binding
from tests.browser.conftest import session_id
from tests.browser.conftest import sign_in_at_provider
from tests.browser.conftest import watch

PATH = "/reports?x=1"


def _reasons(telemetry, event_type="audit_callback_validation_failed"):
    return [e.get("reason") for e in telemetry.events(event_type)]


def _start_login(page, running):
    """Open the app without a session: the browser ends on the provider's login page."""
    page.goto(running.url + PATH)
    expect(page.locator("input[name=login]")).to_be_visible()


def _held_callback(context, page, running, username="alice"):
    """Log in at the provider but keep the callback from the app; return its URL."""
    hold = CallbackHold(context, page, running.origin + running.module.url("callback"))
    _start_login(page, running)
    sign_in_at_provider(page, username)
    url = hold.wait(page)
    hold.release()
    return url


def _browser(new_context):
    """A fresh browser context with its tab."""
    context = new_context()
    return context, context.new_page()


def test_tampered_binding_cookie_is_refused(context, page, running, telemetry, shot):
    _start_login(page, running)
    issued = cookie(context, BINDING_COOKIE)
    assert issued is not None
    forged = replace_binding(context, running)
    assert cookie(context, BINDING_COOKIE)["value"] == forged != issued["value"]
    sign_in_at_provider(page)

    expect_error_page(page, running, "invalid_state")
    shot(page, "error")
    assert "browser_binding_mismatch" in _reasons(telemetry)
    assert telemetry.events("audit_login_success") == []
    assert cookie(context, SESSION_COOKIE) is None
    assert app_status(context, running)["authenticated"] is False

    # A fresh login from the error page works (the provider session makes it
    # click-free) and returns to the page the failed login was for.
    page.click("#dash-oauth-retry")
    page.wait_for_url(running.url + PATH)
    expect_signed_in(page)
    assert "sub=alice " in ask_whoami(page)
    assert len(telemetry.events("audit_session_started")) == 1


def test_callback_swapped_between_browsers_is_refused(new_context, running, telemetry, shot):
    victim, victim_page = _browser(new_context)
    attacker, attacker_page = _browser(new_context)
    callback = _held_callback(victim, victim_page, running)
    assert "code=" in callback and "state=" in callback

    # Another browser with its own login in progress delivers the victim's callback.
    _start_login(attacker_page, running)
    attacker_page.goto(callback)
    expect_error_page(attacker_page, running, "invalid_state")
    shot(attacker_page, "other-browser")
    assert "browser_binding_mismatch" in _reasons(telemetry)

    # A browser that never started a login delivers it too.
    _, stranger = _browser(new_context)
    stranger.goto(callback)
    expect_error_page(stranger, running, "invalid_input")

    for context in (attacker, stranger.context):
        assert cookie(context, SESSION_COOKIE) is None
        assert app_status(context, running)["authenticated"] is False
    assert telemetry.events("audit_session_started") == []

    # The state was not consumed: the rightful browser still completes its own callback.
    victim_page.goto(callback)
    victim_page.wait_for_url(running.url + PATH)
    expect_signed_in(victim_page)
    assert "sub=alice " in ask_whoami(victim_page)
    assert len(telemetry.events("audit_login_success")) == 1


def test_replayed_callback_is_refused(new_context, running, telemetry, shot):
    first, page = _browser(new_context)
    traffic = watch(first)
    target = log_in(page, running)
    callbacks = [u for u in traffic.urls() if "/oauth/callback?" in u and "code=" in u]
    assert len(callbacks) == 1
    sid = session_id(first)
    before = running.module.sessions.load(sid)

    _, other = _browser(new_context)
    other.goto(callbacks[0])
    expect_error_page(other, running, "invalid_state")
    shot(other, "other-browser")
    # The same browser replaying it (history, back button) is refused too.
    again = first.new_page()
    again.goto(callbacks[0])
    expect_error_page(again, running, "invalid_state")
    assert _reasons(telemetry).count("state_unknown_or_used") == 2

    # Nothing else was consumed or changed: one code exchange, the session as it was.
    assert len(telemetry.events("audit_login_success")) == 1
    assert len(telemetry.events("audit_session_started")) == 1
    assert telemetry.events("audit_session_ended") == []
    assert session_id(first) == sid
    after = running.module.sessions.load(sid)
    assert after is not None and after.token.access_token == before.token.access_token
    assert cookie(other.context, SESSION_COOKIE) is None
    page.reload()
    page.wait_for_url(target)
    expect_signed_in(page)
    assert "sub=alice " in ask_whoami(page)


def test_provider_error_is_shown_only_for_a_validated_state(new_context, running, telemetry, shot):
    # The user cancels at the provider: the page names access_denied, the address is clean.
    _, canceller = _browser(new_context)
    _start_login(canceller, running)
    cancel_at_provider(canceller)
    html = expect_error_page(canceller, running, "access_denied")
    assert "End-User aborted interaction" in html
    shot(canceller, "cancelled")

    # An error response built on another browser's state is not believed.
    owner_context, owner = _browser(new_context)
    callback = _held_callback(owner_context, owner, running)
    forged = re.sub(r"(?<=[?&])code=[^&]*", "error=access_denied", callback)
    assert "error=access_denied" in forged and "code=" not in forged
    canceller.goto(forged)
    expect_error_page(canceller, running, "invalid_state")
    shot(canceller, "foreign-state")

    # The browser that owns the state sees the provider's error.
    owner.goto(forged)
    expect_error_page(owner, running, "access_denied")
    assert telemetry.events("audit_session_started") == []
    assert cookie(owner_context, SESSION_COOKIE) is None


def test_module_pages_start_no_login_in_the_background(new_context, running, telemetry, shot):
    # The error page after a refused callback, shown while the provider session is live:
    # nothing but the user's own click may start another login from it.  Chromium
    # fetches /favicon.ico for it (the page names no icon).
    context = new_context(favicon=True)
    page = context.new_page()
    server = log_requests(running)
    _start_login(page, running)
    replace_binding(context, running)
    sign_in_at_provider(page)
    expect_error_page(page, running, "invalid_state")
    page.wait_for_timeout(2000)  # the browser's own follow-up fetches
    shot(page, "error")
    not_pages = [
        f"{r['dest']} {r['method']} {r['path']}?{r['query'][:24]} -> {r['status']}"
        for r in server.requests
        if r["dest"] not in (None, "document")
    ]
    logins = [r for r in server.paths("/oauth/login") if r["dest"] != "document"]
    assert logins == [], f"fetches that were no page load started logins: {not_pages}"
    assert cookie(context, SESSION_COOKIE) is None
    assert telemetry.events("audit_session_started") == []
