"""Signing out holds across the tabs of a browser (real Chromium, real provider).

Two tabs of one browser context share the app's cookies.  When tab B signs
out, tab A must leave the signed-in page by itself (the module's pages post
on a ``BroadcastChannel``; the check-in interval is the fallback), and no tab
may be signed in again through the provider's single sign-on until the user
clicks "Sign in".
"""

from __future__ import annotations

import time

from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.adapter.conftest import RunningApp
from tests.browser.conftest import SESSION_COOKIE
from tests.browser.conftest import Traffic
from tests.browser.conftest import cookie
from tests.browser.conftest import expect_signed_in
from tests.browser.conftest import log_in
from tests.browser.conftest import serve
from tests.browser.conftest import sign_in_at_provider
from tests.browser.conftest import watch

SIGNED_OUT = "#dash-oauth-signed-out"


def _two_signed_in_tabs(
    context: BrowserContext, running: RunningApp, *, script_a: str | None = None
) -> tuple[Page, Page]:
    tab_a = context.new_page()
    if script_a is not None:
        tab_a.add_init_script(script_a)
    log_in(tab_a, running, "/reports?x=1")
    tab_b = context.new_page()
    tab_b.goto(running.url + "/")
    expect_signed_in(tab_b)
    return tab_a, tab_b


def _sign_out_and_confirm(tab: Page) -> None:
    """Click "Log out", then "Yes, sign me out" on the provider's page."""
    tab.click("#logout")
    confirm = tab.locator("button[name=logout][value=yes]")
    expect(confirm).to_be_visible()
    confirm.click()


def _logins_since(traffic: Traffic, running: RunningApp) -> list[str]:
    login = running.origin + running.module.url("login")
    authorize = running.client.provider.authorization_endpoint
    return [u for u in traffic.urls() if u.startswith((login, authorize))]


def test_signing_out_in_one_tab_signs_out_the_other(idp, context, shot):
    with serve(idp, refresh_interval_seconds=1.5) as running:
        tab_a, tab_b = _two_signed_in_tabs(context, running)
        shot(tab_a, "1-tab-a-signed-in")
        shot(tab_b, "1-tab-b-signed-in")
        traffic = watch(context)

        tab_b.click("#logout")
        started = time.monotonic()
        # Tab A leaves the signed-in page by itself, without a reload by the user.
        expect(tab_a.locator(SIGNED_OUT)).to_be_visible(timeout=2500)
        left_after = time.monotonic() - started
        assert left_after < 2.5, left_after
        assert tab_a.url.startswith(running.origin + "/oauth/signed-out?next=")
        expect(tab_a.locator("#greeting")).to_have_count(0)
        shot(tab_a, "2-tab-a-signed-out-while-b-at-provider")
        shot(tab_b, "2-tab-b-at-provider")

        confirm = tab_b.locator("button[name=logout][value=yes]")
        expect(confirm).to_be_visible()
        confirm.click()
        # B lands on the signed-out page, not back in the app.
        expect(tab_b.locator(SIGNED_OUT)).to_have_text("You signed out")
        assert tab_b.url.startswith(running.origin + "/oauth/signed-out")
        shot(tab_b, "3-tab-b-signed-out")

        # Past several check-in intervals, neither tab was signed in again.
        tab_a.wait_for_timeout(4000)
        for tab in (tab_a, tab_b):
            expect(tab.locator(SIGNED_OUT)).to_be_visible()
            expect(tab.locator("#greeting")).to_have_count(0)
        assert _logins_since(traffic, running) == []
        assert cookie(context, SESSION_COOKIE) is None
        shot(tab_a, "4-tab-a-still-signed-out")

        # Only "Sign in" starts a login; the provider asks for credentials again.
        tab_a.click("#dash-oauth-login")
        sign_in_at_provider(tab_a, "alice")
        tab_a.wait_for_url(running.url + "/reports?x=1")
        expect_signed_in(tab_a)
        assert _logins_since(traffic, running)[0].startswith(
            running.origin + "/oauth/login?next=%2Freports%3Fx%3D1"
        )


def test_without_broadcast_channel_the_check_in_signs_the_tab_out(idp, context, shot):
    """The check-in interval is the fallback: it too leads to the signed-out page."""
    with serve(idp, refresh_interval_seconds=1.0) as running:
        tab_a, tab_b = _two_signed_in_tabs(
            context, running, script_a="window.BroadcastChannel = undefined;"
        )
        traffic = watch(context)
        _sign_out_and_confirm(tab_b)
        expect(tab_b.locator(SIGNED_OUT)).to_be_visible()
        expect(tab_a.locator(SIGNED_OUT)).to_be_visible(timeout=5000)
        assert tab_a.url.startswith(running.origin + "/oauth/signed-out?next=")
        tab_a.wait_for_timeout(2500)
        expect(tab_a.locator(SIGNED_OUT)).to_be_visible()
        assert _logins_since(traffic, running) == []
        shot(tab_a, "tab-a-signed-out-by-check-in")


def test_a_single_tab_is_told_it_signed_out(idp, context, page, shot):
    """One tab: after sign-out it sees "You signed out", then the app's pages say the same."""
    with serve(idp) as running:
        log_in(page, running, "/")
        traffic = watch(context)
        _sign_out_and_confirm(page)
        expect(page.locator(SIGNED_OUT)).to_have_text("You signed out")
        shot(page, "signed-out-page")
        # Opening the app again shows the signed-out page, not the provider.
        page.goto(running.url + "/reports")
        expect(page.locator(SIGNED_OUT)).to_be_visible()
        assert page.url == running.url + "/reports"
        assert _logins_since(traffic, running) == []
