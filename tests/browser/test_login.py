"""Login in a real browser: click-free auto login, response modes, SameSite, prefix, expiry."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SESSION_COOKIE
from tests.browser.conftest import app_status
from tests.browser.conftest import ask_whoami
from tests.browser.conftest import assert_clean
from tests.browser.conftest import cookie
from tests.browser.conftest import expect_signed_in
from tests.browser.conftest import log_in
from tests.browser.conftest import poll
from tests.browser.conftest import serve
from tests.browser.conftest import session_id
from tests.browser.conftest import sign_in_at_provider
from tests.browser.conftest import watch

PATH = "/reports?x=1"


def test_click_free_login_returns_to_the_requested_page(context, page, running, telemetry, shot):
    traffic = watch(context)
    target = running.url + PATH
    page.goto(target)
    expect(page.locator("input[name=login]")).to_be_visible()
    assert page.url.startswith(running.client.provider.issuer + "/")
    shot(page, "provider-login")
    sign_in_at_provider(page)
    page.wait_for_url(target)
    expect_signed_in(page)
    assert_clean(page)
    assert page.evaluate("location.href") == target
    shot(page, "signed-in")

    answer = ask_whoami(page)
    assert answer.startswith("sub=alice groups=admins,analysts clicks=1 token_expires_in=")
    shot(page, "whoami")

    # The way there: page -> /oauth/login?next=<page> -> provider -> callback -> page.
    urls = traffic.urls()
    login_url = f"{running.origin}/oauth/login?next={quote(PATH, safe='')}"
    assert urls[0] == target
    assert login_url in urls
    callbacks = [u for u in urls if u.startswith(running.origin + "/oauth/callback?")]
    assert len(callbacks) == 1
    assert urls[-1] == target

    # A reload keeps the session: no trip to the provider.
    before = len(traffic.navigations)
    page.reload()
    expect_signed_in(page)
    assert traffic.urls()[before:] == [target]
    assert_clean(page)
    assert "clicks=1 " in ask_whoami(page)

    status = app_status(context, running)
    assert status["authenticated"] is True
    assert status["user"]["sub"] == "alice"
    assert status["user"]["groups"] == ["admins", "analysts"]
    session = cookie(context, SESSION_COOKIE)
    assert session is not None
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    # The binding cookie stays (HttpOnly) for other tabs' logins until it expires.
    binding = cookie(context, "dash_oauth_binding")
    assert binding is not None and binding["httpOnly"]
    assert len(telemetry.events("audit_session_started")) == 1
    assert len(telemetry.events("audit_login_success")) == 1


VARIANTS: dict[str, dict[str, Any]] = {
    "form_post": {"response_mode": "form_post"},
    "strict_query": {"cookie_samesite": "Strict"},
    "strict_form_post": {"cookie_samesite": "Strict", "response_mode": "form_post"},
    "path_prefix": {"prefix": "/app/"},
    # The app on localhost: the provider is another site, as in a deployment.
    "cross_site_query": {"cross_site": True},
    "cross_site_form_post": {"cross_site": True, "response_mode": "form_post"},
    "cross_site_strict_query": {"cross_site": True, "cookie_samesite": "Strict"},
    "cross_site_strict_form_post": {
        "cross_site": True,
        "cookie_samesite": "Strict",
        "response_mode": "form_post",
    },
    "cross_site_path_prefix": {"cross_site": True, "prefix": "/app/"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_login_variants(variant, idp, context, page, telemetry, shot):
    options = VARIANTS[variant]
    with serve(idp, **options) as running:
        traffic = watch(context)
        target = log_in(page, running)
        shot(page, "signed-in")
        prefix = options.get("prefix", "/")
        assert target == f"{running.origin}{prefix}reports?x=1"
        assert "sub=alice " in ask_whoami(page)
        page.reload()
        expect_signed_in(page)
        assert "clicks=1 " in ask_whoami(page)
        assert_clean(page)

        callback = f"{running.origin}{prefix}oauth/callback"
        posts = [u for u in traffic.urls("POST") if u.startswith(running.origin)]
        if options.get("response_mode") == "form_post":
            assert posts == [callback]  # the provider's auto-submitting form
            assert any(u.startswith(callback + "?fp=") for u in traffic.urls("GET"))
        else:
            assert posts == []
        steps = [u for u in traffic.urls() if u.startswith(callback) and "step=1" in u]
        strict = options.get("cookie_samesite") == "Strict"
        if strict and options.get("cross_site"):
            # The Strict binding cookie is not sent with the provider's cross-site
            # redirect: one same-origin step brings it along.
            assert len(steps) == 1
        else:
            assert steps == []
        session = cookie(context, SESSION_COOKIE)
        assert session is not None
        assert session["sameSite"] == ("Strict" if strict else "Lax")
        status = app_status(context, running)
        assert status["authenticated"] is True and status["user"]["sub"] == "alice"
        assert status["logout_url"] == f"{prefix}oauth/logout"
        assert len(telemetry.events("audit_session_started")) == 1


@pytest.mark.parametrize(
    "options",
    [{}, {"cross_site": True, "cookie_samesite": "Strict"}],
    ids=["same_site", "cross_site_strict"],
)
def test_session_ended_server_side_logs_in_again_from_a_callback(
    options, idp, context, page, telemetry, shot
):
    with serve(idp, **options) as running:
        _relog_after_server_side_end(running, context, page, telemetry, shot)


def _relog_after_server_side_end(running, context, page, telemetry, shot):
    target = log_in(page, running)
    assert "clicks=1 " in ask_whoami(page)
    old_sid = session_id(context)
    assert running.module.sessions.delete(old_sid) is not None

    traffic = watch(context)
    page.click("#whoami")  # the guard answers this callback with a sideUpdate to login
    poll(page, lambda: len(traffic.urls()) > 1 and traffic.urls()[-1] == target)
    page.wait_for_url(target)
    expect_signed_in(page)
    assert_clean(page)
    shot(page, "signed-in-again")

    urls = traffic.urls()
    assert urls[0] == f"{running.origin}/oauth/login?next={quote(PATH, safe='')}"
    assert not any(u.startswith(running.client.provider.issuer + "/interaction") for u in urls)
    assert urls[-1] == target
    new_sid = session_id(context)
    assert new_sid != old_sid
    assert running.module.sessions.load(old_sid) is None
    assert "sub=alice groups=admins,analysts clicks=1 " in ask_whoami(page)
    assert len(telemetry.events("audit_session_started")) == 2
