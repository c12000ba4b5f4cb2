"""Session fixation on an HTTPS app: ``__Host-`` cookies, ids rotated at login.

``tests/adapter/test_session_lifecycle.py::test_login_never_adopts_a_presented_session_id``
covers the plain-HTTP cookie name.  An app served over HTTPS names its cookies
``__Host-…``: a browser only accepts such a cookie from the app's own origin
(Secure, ``Path=/``, no ``Domain``), so a sibling subdomain cannot plant one,
and the unprefixed name it can plant is ignored.

The app runs in the Flask test client on ``https://app.test`` (no TLS server
needed); the provider is the real one, which only sees the redirect URI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import pytest

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from examples.basic_app import create_app
from tests.adapter.conftest import SECRET
from tests.idp.harness import login

ORIGIN = "https://app.test"
SESSION = "__Host-dash_oauth_session"
BINDING = "__Host-dash_oauth_binding"


@dataclass
class HttpsApp:
    app: Any
    client: OAuthClient

    @property
    def module(self) -> Any:
        return self.app.server.extensions["dash_oauth_otel"]

    def browser(self) -> Any:
        return self.app.server.test_client()


@pytest.fixture
def https_app(idp) -> Iterator[HttpsApp]:
    registered = idp.register_client([f"{ORIGIN}/oauth/callback"])
    provider = oidc_discover(idp.issuer, name="test-idp", allow_insecure_loopback=True)
    client = OAuthClient(
        provider=provider,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        redirect_uri=f"{ORIGIN}/oauth/callback",
        scopes=("profile", "email", "groups"),
        state_key=SECRET,
        state_store=MemoryStore(),
    )
    try:
        yield HttpsApp(create_app(client), client)
    finally:
        provider.close()


def _set_cookies(response) -> dict[str, Any]:
    """The cookies a response sets, by base name (without the app's suffix)."""
    jar: dict[str, Any] = {}
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        jar.update({re.sub(r"_[0-9a-f]{8}$", "", name): value for name, value in parsed.items()})
    return jar


def _log_in(browser, username="alice"):
    start = browser.get(f"{ORIGIN}/oauth/login?next=/reports")
    assert start.status_code == 302
    binding = _set_cookies(start)[BINDING]
    assert binding["secure"] and binding["httponly"] and binding["path"] == "/"
    assert not binding["domain"]
    result = login(start.headers["Location"], username=username)
    assert result.callback_url.startswith(f"{ORIGIN}/oauth/callback?")
    landed = browser.get(result.callback_url)
    assert landed.status_code == 303, landed.get_data(as_text=True)[:400]
    return landed


def _status(browser):
    return browser.get(f"{ORIGIN}/oauth/status").get_json()


def test_https_cookies_are_host_prefixed_and_rotated(https_app, telemetry):
    """The cookies of an HTTPS app: ``__Host-``, Secure, HttpOnly, ``Path=/``, no Domain."""
    browser = https_app.browser()
    landed = _log_in(browser)
    issued = _set_cookies(landed)[SESSION]
    assert issued["secure"] and issued["httponly"] and issued["path"] == "/"
    assert not issued["domain"] and issued["samesite"] == "Lax"
    # The binding stays for other tabs' logins until it expires (logout clears it).
    assert BINDING not in _set_cookies(landed)
    assert _status(browser)["user"]["sub"] == "alice"


def test_planted_host_cookie_is_never_adopted(https_app, telemetry):
    """Session fixation: an id planted under the ``__Host-`` name before login.

    (Only the app's own origin could set it; an XSS or a shared computer, say.)
    The login issues a new id; the planted one names no session.
    """
    browser = https_app.browser()
    planted = "planted-by-attacker-" + "x" * 30
    browser.set_cookie(
        https_app.module.cookies.session_name, planted, domain="app.test", secure=True
    )
    landed = _log_in(browser)
    issued = _set_cookies(landed)[SESSION].value
    assert issued != planted
    assert https_app.module.sessions.load(planted) is None
    assert https_app.module.sessions.load(issued) is not None
    assert len(telemetry.events("audit_session_started")) == 1


def test_unprefixed_cookie_from_a_sibling_domain_is_ignored(https_app, telemetry):
    """A sibling subdomain plants the attacker's own valid session id, unprefixed.

    ``evil.app.test`` may set ``dash_oauth_session`` for ``.app.test``, but the
    HTTPS app reads only the ``__Host-`` cookie: the victim is not signed in as
    the attacker, and after logging in is themselves.
    """
    attacker = https_app.browser()
    _log_in(attacker, "mallory")
    attackers_sid = attacker.get_cookie(
        https_app.module.cookies.session_name, domain="app.test"
    ).value
    assert _status(attacker)["user"]["sub"] == "mallory"

    victim = https_app.browser()
    unprefixed = https_app.module.cookies.session_name.removeprefix("__Host-")
    victim.set_cookie(unprefixed, attackers_sid, domain=".app.test")
    assert _status(victim)["authenticated"] is False
    page = victim.get(f"{ORIGIN}/reports", headers={"Accept": "text/html"})
    assert page.status_code == 302 and "/oauth/login" in page.headers["Location"]
    _log_in(victim)
    assert _status(victim)["user"]["sub"] == "alice"
    # The attacker's session was neither taken over nor ended by the victim's login.
    assert _status(attacker)["user"]["sub"] == "mallory"
    assert telemetry.events("audit_session_ended") == []
