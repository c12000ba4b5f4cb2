"""Provider faults through the Dash module: a clear error, an audit event, a consistent
session, and recovery once the provider is back.

Core-level versions: ``tests/core/test_callback_failures.py`` (token endpoint
500, key rotation), ``tests/core/test_http.py`` (timeouts, redirects, size
caps); session-level refresh failures: ``tests/adapter/test_session_lifecycle.py``.
"""

from __future__ import annotations

import re
import time

import httpx

from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.idp.harness import jwt_header
from tests.security.support import error_code
from tests.security.support import serve
from tests.security.support import state_keys


def _status(http):
    return http.get("/oauth/status").json()


def _retry_link(page: httpx.Response) -> str:
    found = re.search(r'id=dash-oauth-retry href="([^"]+)"', page.text)
    assert found, page.text[-600:]
    return found.group(1).replace("&amp;", "&")


def _assert_signed_out(running, http):
    """Nothing was half-made: no session cookie, no session record, no pending state."""
    assert session_cookie(http.cookies) is None
    assert _status(http)["authenticated"] is False
    assert list(running.module.sessions.scan()) == []
    assert state_keys(running) == []


def _recover(exposure, running, http, page, *, lands_on: str):
    """Follow the error page's retry link: a fresh login that lands on ``lands_on``."""
    retry = _retry_link(page)
    assert retry.startswith("/oauth/login")
    start = http.get(retry)
    assert start.status_code == 302
    landed = exposure.login(http, start.headers["location"]).deliver(http)
    assert landed.status_code == 303
    assert landed.headers["location"] == lands_on
    assert _status(http)["user"]["sub"] == "alice"


def test_token_endpoint_500_at_login(idp, exposure, telemetry):
    """The token endpoint fails (HTTP 500) while the login's code is exchanged.

    The exchange is not retried (a code is single-use), the page says what
    failed, the state is consumed (the callback cannot be replayed), and a new
    login works once the provider is back.
    """
    with serve_app(idp) as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http, "/reports"))
        idp.fail_token_endpoint()
        page = result.deliver(http)
        assert page.status_code == 502
        assert error_code(page) == "token_exchange_error"
        assert "HTTP 500" in page.text and "server_error" in page.text
        assert "injected fault" not in page.text  # the provider's body is not echoed
        assert len(telemetry.spans("dash_oauth_otel.token.exchange.http")) == 1
        assert [e["status"] for e in telemetry.events("http_error")] == ["http_500"]
        failed = telemetry.events("audit_login_failed")
        assert [(e["error_class"], e["phase"]) for e in failed] == [
            ("TokenEndpointError", "token.exchange")
        ]
        _assert_signed_out(running, http)
        assert error_code(result.deliver(http)) == "invalid_state"
        assert _retry_link(page) == "/oauth/login?next=%2Freports"
        _recover(exposure, running, http, page, lands_on="/reports")


def test_token_endpoint_slower_than_the_timeout(idp, exposure, telemetry):
    """The token endpoint answers after the client's timeout (1 s here, 2.5 s there).

    The app gives up at its timeout instead of holding the browser, shows a
    transport error, and a new login works (the next answer is fast).
    """
    with serve(idp, timeout=1.0) as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http, "/reports"))
        idp.delay_token_endpoint(ms=2500)
        started = time.monotonic()
        page = result.deliver(http)
        waited = time.monotonic() - started
        assert 0.9 <= waited < 2.2, waited
        assert page.status_code == 502
        assert error_code(page) == "transport_error"
        assert len(telemetry.spans("dash_oauth_otel.token.exchange.http")) == 1
        transport = telemetry.events("transport_error")
        assert len(transport) == 1 and transport[0]["phase"] == "token.exchange"
        failed = telemetry.events("audit_login_failed")
        assert [(e["error_class"], e["reason"]) for e in failed] == [("TransportError", "timeout")]
        _assert_signed_out(running, http)
        _recover(exposure, running, http, page, lands_on="/reports")


def test_jwks_down_at_first_login(idp, exposure, telemetry):
    """The JWKS endpoint is down (503) when the app first needs the provider's keys.

    The ID token cannot be verified: the login fails clearly, nothing is
    cached from the failure, and the next login fetches the keys and completes.
    """
    with serve_app(idp) as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http, "/reports"))
        idp.fail_jwks(times=5)
        page = result.deliver(http)
        assert page.status_code == 502
        assert error_code(page) == "http_error"
        assert "JWKS URI answered HTTP 503" in page.text
        errors = telemetry.events("http_error")
        assert [(e["phase"], e["status"]) for e in errors] == [("jwks", "http_503")]
        failed = telemetry.events("audit_login_failed")
        assert [(e["phase"], e["reason"]) for e in failed] == [("jwks", "jwks_http_error")]
        assert telemetry.events("audit_session_started") == []
        _assert_signed_out(running, http)
        idp.reset_faults()
        _recover(exposure, running, http, page, lands_on="/reports")
        assert len(telemetry.spans("dash_oauth_otel.jwks.http")) >= 2


def test_keys_rotated_and_old_ones_retired_during_a_session(idp, exposure, telemetry):
    """The provider rotates its signing key and retires the old one mid-session.

    The next refresh brings an ID token signed by a key the app has never seen:
    the app refetches the JWKS once, verifies it, and the session goes on.
    """
    with serve_app(idp, access_token_ttl=4, refresh_lead_seconds=2) as running:
        http = exposure.browser(running)
        exposure.sign_in(http)
        sid = session_cookie(http.cookies)
        before = running.module.sessions.load(sid).token
        new_kid = idp.rotate_keys(retire_old=True)
        assert jwt_header(before.id_token)["kid"] != new_kid
        time.sleep(2.2)
        status = _status(http)
        assert status["authenticated"] is True and status["user"]["sub"] == "alice"
        after = running.module.sessions.load(sid).token
        assert after.access_token != before.access_token
        assert jwt_header(after.id_token)["kid"] == new_kid
        exposure.secret(after.access_token, after.refresh_token, after.id_token)
        assert len(telemetry.events("audit_token_refresh")) == 1
        assert telemetry.events("audit_session_ended") == []
        assert len(telemetry.spans("dash_oauth_otel.jwks.http")) == 2


def test_userinfo_503_at_login(idp, exposure, telemetry):
    """The userinfo endpoint is unavailable (503) during the login.

    The app requires userinfo (its ``sub`` must match the ID token's), so the
    login fails with a clear error; the next login completes.
    """
    with serve_app(idp) as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http, "/reports"))
        idp.fail_userinfo()
        page = result.deliver(http)
        assert page.status_code == 502
        assert error_code(page) == "http_error"
        assert "userinfo endpoint answered HTTP 503" in page.text
        userinfo = telemetry.events("audit_userinfo")
        assert [(e["status"], e["http_status"]) for e in userinfo] == [("http_503", 503)]
        failed = telemetry.events("audit_login_failed")
        assert [(e["phase"], e["error_class"]) for e in failed] == [("userinfo", "HTTPError")]
        _assert_signed_out(running, http)
        _recover(exposure, running, http, page, lands_on="/reports")


def test_refresh_token_revoked_at_the_provider(idp, exposure, telemetry):
    """An administrator revokes the session's refresh token at the provider.

    The next refresh is refused (``invalid_grant``): the session ends with
    ``token_refresh_error`` (audited as ``audit_session_ended``), the record is
    gone, pages send the browser to sign in, and a new login works.
    """
    with serve_app(idp, access_token_ttl=4, refresh_lead_seconds=2) as running:
        http = exposure.browser(running)
        exposure.sign_in(http)
        sid = session_cookie(http.cookies)
        token = running.module.sessions.load(sid).token
        revoked = httpx.post(
            idp.endpoint("revocation"),
            data={"token": token.refresh_token, "token_type_hint": "refresh_token"},
            auth=(running.registered.client_id, running.registered.client_secret),
        )
        assert revoked.status_code == 200
        time.sleep(2.2)
        status = _status(http)
        assert status == {
            "authenticated": False,
            "error": "token_refresh_error",
            "login_url": "/oauth/login",
        }
        ended = telemetry.events("audit_session_ended")
        assert [(e["reason"], e["error_class"]) for e in ended] == [
            ("token_refresh_error", "TokenEndpointError")
        ]
        assert running.module.sessions.load(sid) is None
        assert list(running.module.sessions.scan()) == []
        page = http.get("/reports", headers={"Accept": "text/html"})
        assert page.status_code == 302 and page.headers["location"].startswith("/oauth/login")
        exposure.sign_in(http, "/reports")
        assert _status(http)["user"]["sub"] == "alice"
