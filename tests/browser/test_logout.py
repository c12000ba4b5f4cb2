"""Logout in a real browser: app session ended and revoked, provider session ended too."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SESSION_COOKIE
from tests.browser.conftest import app_status
from tests.browser.conftest import cookie
from tests.browser.conftest import expect_signed_in
from tests.browser.conftest import log_in
from tests.browser.conftest import poll
from tests.browser.conftest import serve
from tests.browser.conftest import session_id
from tests.browser.conftest import sign_in_at_provider
from tests.browser.conftest import watch
from tests.idp.tokens import refresh


@pytest.mark.parametrize("cross_site", [False, True], ids=["same_site", "cross_site"])
def test_logout_ends_app_and_provider_sessions(cross_site, idp, context, page, telemetry, shot):
    with serve(idp, cross_site=cross_site) as running:
        issuer = running.client.provider.issuer
        log_in(page, running)
        sid = session_id(context)
        record = running.module.sessions.load(sid)
        assert record is not None and record.token.refresh_token
        shot(page, "signed-in")

        traffic = watch(context)
        page.click("#logout")
        # The app ends its session and sends the browser on to the provider's end-session.
        poll(page, lambda: any(u.startswith(issuer) for u in traffic.urls()))
        page.wait_for_load_state()
        shot(page, "at-provider")
        assert traffic.urls()[0] == running.origin + running.module.url("logout")
        assert app_status(context, running)["authenticated"] is False
        assert cookie(context, SESSION_COOKIE) is None
        assert running.module.sessions.load(sid) is None
        assert len(telemetry.events("audit_logout")) == 1
        revocations = telemetry.events("audit_token_revocation")
        assert [e["which"] for e in revocations] == ["refresh", "access"]
        assert all(e["revoked"] for e in revocations)
        assert refresh(idp, running.registered, record.token.refresh_token).status_code == 400

        # The provider asks "sign out?"; confirming ends its session and returns to the app.
        end_session = running.client.provider.end_session_endpoint
        method, _ = next((m, u) for m, u in traffic.navigations if u.startswith(end_session))
        status = poll(page, lambda: traffic.status_of(method, end_session))
        assert status == 200, (
            f"the provider answered the app's {method} to its end-session endpoint with "
            f"HTTP {status}: {page.inner_text('body')[:200]!r}"
        )
        if not cross_site:
            confirm = page.locator("button[name=logout][value=yes]")
            expect(confirm).to_be_visible()
            confirm.click()
        # Cross-site, the POST carries none of the provider's SameSite=Lax cookies: it
        # finds no session to ask about, and its session cookie is replaced and cleared.
        # The browser lands on the module's signed-out page, not back in the app.
        expect(page.locator("#dash-oauth-signed-out")).to_have_text("You signed out")
        shot(page, "signed-out")
        assert page.url.startswith(running.origin + "/oauth/signed-out")
        assert [e["state_match"] for e in telemetry.events("audit_logout_return")] == [True]
        urls = traffic.urls()
        assert not [u for u in urls if u.startswith(running.origin + "/oauth/login")], urls
        # The end-session request was a POST: the ID token is in no URL.
        assert ("POST", end_session) in traffic.navigations
        assert not [u for u in urls if "id_token_hint" in u], urls

        # "Sign in": the provider session is gone, the login form shows and another user signs in.
        page.click("#dash-oauth-login")
        expect(page.locator("input[name=login]")).to_be_visible()
        shot(page, "login-form-again")
        sign_in_at_provider(page, "bob")
        page.wait_for_url(running.url + "/")
        expect_signed_in(page, "Bob")
        assert app_status(context, running)["user"]["sub"] == "bob"
