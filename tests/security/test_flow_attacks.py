"""Attacks on the login flow, over HTTP against the real provider, through the Dash module.

Core-level forgeries (tampered, expired, replayed and cross-client states, a
callback from another browser, RFC 9207 ``iss``, tampered ID tokens) are in
``tests/core/test_callback_failures.py``; real-browser versions of the binding
attacks are in ``tests/browser/test_attacks.py``.  Here each attack goes
through the module's routes and cookies.
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest

from tests.adapter.conftest import serve_app
from tests.idp.harness import LoginError
from tests.security.support import SESSION_COOKIE
from tests.security.support import error_code
from tests.security.support import pending
from tests.security.support import serve
from tests.security.support import state_keys
from tests.security.support import with_query


def _reasons(telemetry, event="audit_login_failed"):
    return [e.get("reason") for e in telemetry.events(event)]


def _status(http):
    return http.get("/oauth/status").json()


def test_login_csrf_attackers_callback_in_victims_browser(idp, exposure, telemetry):
    """Login CSRF / account substitution.

    Mallory logs in with her own account and, instead of finishing, makes the
    victim's browser open her callback URL (a link, an image, a redirect), so
    the victim would work in Mallory's account.  The callback is bound to
    Mallory's browser: the victim's browser gets an error page and no session,
    Mallory's login stays pending, and the victim's own login (already in
    progress) shows the victim's ``sub``.
    """
    with serve_app(idp) as running:
        mallory, victim = exposure.browser(running), exposure.browser(running)
        planted = exposure.login(mallory, exposure.start(mallory), username="mallory")
        victims_own = exposure.start(victim, "/reports")

        # A browser with a login of its own in progress: the binding differs.
        refused = victim.get(planted.callback_url)
        assert refused.status_code == 400
        assert error_code(refused) == "invalid_state"
        assert "another browser" in refused.text
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        # A browser that never started a login: no binding at all.
        fresh = exposure.browser(running)
        assert error_code(fresh.get(planted.callback_url)) == "invalid_input"
        assert _reasons(telemetry) == ["browser_binding_mismatch", "browser_token_invalid"]
        assert [e["phase"] for e in telemetry.events("audit_callback_validation_failed")] == [
            "callback.browser_token_validation"
        ] * 2
        assert telemetry.events("audit_session_started") == []
        assert _status(victim)["authenticated"] is False
        # Nothing was consumed: Mallory's login is still pending.
        assert pending(running, planted.state)

        # The victim completes their own login and is themselves.
        landed = exposure.login(victim, victims_own, username="alice").deliver(victim)
        assert landed.status_code == 303 and landed.headers["location"] == "/reports"
        assert _status(victim)["user"]["sub"] == "alice"
        # And Mallory's own browser still finishes hers, as Mallory.
        assert planted.deliver(mallory).status_code == 303
        assert _status(mallory)["user"]["sub"] == "mallory"
        assert _status(victim)["user"]["sub"] == "alice"
        assert state_keys(running) == []


def test_nonce_replaced_in_the_id_token_is_refused(idp, exposure, telemetry):
    """An ID token whose ``nonce`` was replaced (re-signed by the provider's key).

    The token is not the answer to this login's request: refused with
    ``nonce_mismatch``, no session, the state consumed (the code was spent).
    """
    with serve_app(idp) as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http))
        idp.tamper_next_id_token("nonce")
        page = result.deliver(http)
        assert page.status_code == 400
        assert error_code(page) == "nonce_mismatch"
        assert _reasons(telemetry) == ["nonce_mismatch"]
        failure = telemetry.events("audit_login_failed")[0]
        assert failure["error_class"] == "NonceError"
        assert telemetry.events("audit_session_started") == []
        assert _status(http)["authenticated"] is False
        assert state_keys(running) == []
        # The same callback cannot be tried again; a new login works.
        assert error_code(result.deliver(http)) == "invalid_state"
        exposure.sign_in(http)
        assert _status(http)["user"]["sub"] == "alice"


def test_nonce_removed_from_the_request_is_refused(idp, exposure, telemetry):
    """The ``nonce`` stripped from the authorization request on its way to the provider.

    Without PAR the request travels through the browser, where it can be
    edited.  The provider then issues an ID token without ``nonce``; the app
    still expects the one it stored and refuses (``nonce_missing``).
    """
    with serve(idp, use_par=False) as running:
        http = exposure.browser(running)
        url = exposure.start(http)
        assert "nonce=" in url
        result = exposure.login(http, with_query(url, nonce=None))
        page = result.deliver(http)
        assert error_code(page) == "nonce_mismatch"
        assert _reasons(telemetry) == ["nonce_missing"]
        assert telemetry.events("audit_session_started") == []
        assert state_keys(running) == []


def test_nonce_from_another_flow_is_refused_and_that_flow_survives(idp, exposure, telemetry):
    """The nonce of one login grafted onto another login's request (flow crossing).

    The ID token of the second login then carries the first login's nonce,
    which is not the one stored for the second: refused.  The first login,
    whose values were not touched, still completes.
    """
    with serve(idp, use_par=False) as running:
        http = exposure.browser(running)
        first = exposure.start(http, "/first")
        second = exposure.start(http, "/second")
        first_nonce = dict(parse_qsl(urlsplit(first).query))["nonce"]
        crossed = exposure.login(http, with_query(second, nonce=first_nonce))
        assert error_code(crossed.deliver(http)) == "nonce_mismatch"
        assert _reasons(telemetry) == ["nonce_mismatch"]
        assert len(state_keys(running)) == 1  # only the crossed login was consumed
        landed = exposure.login(http, first).deliver(http)
        assert landed.status_code == 303 and landed.headers["location"] == "/first"
        assert _status(http)["user"]["sub"] == "alice"


def test_code_of_another_client_is_refused_by_the_provider(idp, exposure, telemetry):
    """Cross-client code injection.

    A code issued to client A, and A's whole callback, delivered to client B's
    app.  A's state is refused by B (sealed for another client); A's code under
    a valid state of B reaches B's exchange, where the provider refuses it
    (bound to client A and its PKCE challenge).  A's own login is unharmed.
    """
    with serve_app(idp) as app_a, serve_app(idp) as app_b:
        browser_a, browser_b = exposure.browser(app_a), exposure.browser(app_b)
        issued_to_a = exposure.login(browser_a, exposure.start(browser_a))
        assert issued_to_a.callback_url.startswith(app_a.origin)

        # A's callback as it is, at B.
        forwarded = browser_b.get(
            "/oauth/callback", params=dict(issued_to_a.params), follow_redirects=False
        )
        assert error_code(forwarded) == "invalid_state"
        assert _reasons(telemetry) == ["gcm_auth_failed"]  # sealed for client A

        # A's code with a state B issued to this very browser.
        own = exposure.login(browser_b, exposure.start(browser_b))
        grafted = {**own.params, "code": issued_to_a.code}
        page = browser_b.get("/oauth/callback", params=grafted)
        assert page.status_code == 502
        assert error_code(page) == "token_exchange_error"
        exchange_errors = telemetry.events("audit_token_exchange_error")
        assert [e["error_class"] for e in exchange_errors] == ["TokenEndpointError"]
        # Sent by B (the last login started was B's).
        b_digest = telemetry.events("audit_redirect_issued")[-1]["client_id_digest"]
        assert exchange_errors[0]["client_id_digest"] == b_digest
        assert "invalid_grant" in page.text
        assert _status(browser_b)["authenticated"] is False
        assert telemetry.events("audit_session_started") == []

        # A's rightful callback still works in A's browser.
        assert issued_to_a.deliver(browser_a).status_code == 303
        assert _status(browser_a)["user"]["sub"] == "alice"


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/oauth/callback", "{origin}/oauth/callback/../evil", "{origin}/evil"],
    ids=["other-host", "dot-segments", "other-path"],
)
def test_tampered_redirect_uri_is_refused_by_the_provider(idp, exposure, telemetry, target):
    """The ``redirect_uri`` of the authorization request rewritten to collect the code.

    The provider compares it exactly with the registered URI and shows its own
    error page: no code is issued, nothing reaches the app, and the app's
    pending login is left as it was.
    """
    with serve(idp, use_par=False) as running:
        http = exposure.browser(running)
        url = exposure.start(http)
        state = dict(parse_qsl(urlsplit(url).query))["state"]
        forged = with_query(url, redirect_uri=target.format(origin=running.origin))
        with pytest.raises(LoginError) as refused:
            exposure.login(http, forged)
        assert refused.value.status_code == 400
        assert "redirect_uri" in refused.value.body
        assert "code=" not in refused.value.body
        assert telemetry.events("audit_callback_received") == []
        assert telemetry.spans("dash_oauth_otel.callback") == []
        assert pending(running, state)


def test_unregistered_redirect_uri_fails_at_login_start(idp, exposure, telemetry):
    """An app whose callback URL is not the one registered at the provider.

    With PAR the provider checks the redirect URI when the request is pushed,
    server to server: the app shows an error page at once and no browser is
    sent to the provider.
    """
    with serve(idp, registered_redirect_uris=["http://127.0.0.1:9/elsewhere"]) as running:
        http = exposure.browser(running)
        page = http.get("/oauth/login", params={"next": "/reports"})
        assert page.status_code == 502
        assert error_code(page) == "par_error"
        assert "PAR endpoint refused the request" in page.text
        assert "location" not in page.headers  # the browser stays on the app
        assert 'href="/oauth/login?next=%2Freports"' in page.text
        refused = telemetry.events("http_error")
        assert [e["status"] for e in refused] == ["http_400"]
        assert telemetry.events("audit_redirect_issued") == []


def test_two_tabs_log_in_concurrently(idp, exposure, telemetry):
    """Two tabs of one browser start logins at once; both must complete.

    The tabs share the browser's cookies: the second login must not break the
    first one's callback, and finishing one must not make the other fail.
    """
    with serve_app(idp) as running:
        http = exposure.browser(running)
        first = exposure.start(http, "/first")
        second = exposure.start(http, "/second")
        assert first != second
        one = exposure.login(http, first)
        two = exposure.login(http, second)  # single sign-on at the provider
        assert one.state != two.state and one.code != two.code
        landed_two = two.deliver(http)
        assert landed_two.status_code == 303 and landed_two.headers["location"] == "/second"
        landed_one = one.deliver(http)
        assert landed_one.status_code == 303, error_code(landed_one)
        assert landed_one.headers["location"] == "/first"
        assert _status(http)["user"]["sub"] == "alice"
        assert len(telemetry.events("audit_login_success")) == 2
        assert state_keys(running) == []
