"""No secret of a run shows up in what the module exports or shows.

Every test of this suite that uses the ``exposure`` fixture is scanned when it
ends (see ``tests/security/support.py``).  This test adds one run that touches
every path where a secret could slip out: logins in both response modes, a
refused ID token, a failing token endpoint, a replay, a provider error, a
token refresh, the app's own pages and callbacks, and logout with revocation.
The real-browser version (final browser URLs, rendered pages) is
``tests/browser/test_secrets.py``.
"""

from __future__ import annotations

import time

import pytest

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel.core.state import state_store_key
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.logout import is_logout_answer
from tests.security.support import EVERYWHERE
from tests.security.support import NOT_IN_PAGES
from tests.security.support import TELEMETRY
from tests.security.support import Exposure
from tests.security.support import error_code
from tests.security.support import serve

WHOAMI = {
    "output": "answer.children",
    "outputs": {"id": "answer", "property": "children"},
    "inputs": [{"id": "whoami", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["whoami.n_clicks"],
    "state": [],
}


def _one_time_values(exposure, running, state):
    """Read the PKCE verifier and nonce a pending login keeps (server side only)."""
    payload = running.client.state_sealer.unseal(state)
    raw = running.client.state_store.get(state_store_key(payload["s"]))
    values = running.client.store_sealer.unseal(raw.decode())
    exposure.secret(values["v"], values["n"], payload["s"])
    return values


def _current_tokens(exposure, running, http):
    record = running.module.sessions.load(session_cookie(http.cookies))
    assert record is not None
    token = record.token
    exposure.secret(token.access_token, token.refresh_token, token.id_token)
    return token


def test_no_secret_in_telemetry_logs_pages_or_locations(idp, exposure, telemetry):
    """The scan over a run that exercises every path (see the module docstring)."""
    with serve_app(
        idp, access_token_ttl=4, refresh_lead_seconds=2, revoke_on_session_end=True
    ) as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http, "/reports"))
        _one_time_values(exposure, running, result.state)
        assert result.deliver(http).status_code == 303
        first = _current_tokens(exposure, running, http)

        # The app's own pages and callbacks while signed in.
        assert http.get("/").status_code == 200
        assert http.get("/_dash-layout").status_code == 200
        assert "sub=alice" in http.post("/_dash-update-component", json=WHOAMI).text
        assert http.get("/oauth/status").json()["authenticated"]

        # A replay, a forged provider error and a refused ID token: error pages.
        assert error_code(result.deliver(http)) == "invalid_state"
        other = exposure.browser(running)
        pending = exposure.login(other, exposure.start(other), username="bob")
        _one_time_values(exposure, running, pending.state)
        denied = {k: v for k, v in pending.params.items() if k != "code"}
        denied |= {"error": "access_denied", "error_description": "bob said no"}
        assert error_code(other.get("/oauth/callback", params=denied)) == "access_denied"
        tampered = exposure.login(other, exposure.start(other), username="bob")
        idp.tamper_next_id_token("signature")
        assert error_code(tampered.deliver(other)) == "invalid_id_token"

        # The token endpoint failing: an http_error event with a body digest only.
        failing = exposure.login(other, exposure.start(other), username="bob")
        idp.fail_token_endpoint()
        assert error_code(failing.deliver(other)) == "token_exchange_error"
        assert "body_digest" in telemetry.events("http_error")[-1]

        # A refresh: new tokens, never exported either.
        time.sleep(2.2)
        assert http.get("/oauth/status").json()["authenticated"]
        refreshed = _current_tokens(exposure, running, http)
        assert refreshed.access_token != first.access_token
        assert telemetry.events("audit_token_refresh")

        # Logout with revocation.
        token = http.get("/oauth/status").json()["csrf_token"]
        assert is_logout_answer(http.post("/oauth/logout", data={"csrf_token": token}))
        revoked = [e["which"] for e in telemetry.events("audit_token_revocation")]
        assert revoked[-2:] == ["refresh", "access"]

    with serve_app(idp, response_mode="form_post") as running:
        http = exposure.browser(running)
        result = exposure.login(http, exposure.start(http))
        _one_time_values(exposure, running, result.state)
        bridged = result.deliver(http)
        handle = bridged.headers["location"].split("fp=", 1)[1]
        exposure.secret(handle, level=NOT_IN_PAGES)
        assert http.get(bridged.headers["location"]).status_code == 303
        _current_tokens(exposure, running, http)
        assert error_code(http.get(bridged.headers["location"])) == "invalid_callback_query"

    # The scan had something to look for, and somewhere to look.
    assert len(exposure.secrets[EVERYWHERE]) >= 15
    assert len(exposure.secrets[NOT_IN_PAGES]) >= 5
    assert exposure.secrets[TELEMETRY]
    sinks = exposure.sinks()
    assert len(sinks["pages"]) >= 10 and len(sinks["locations"]) >= 8
    assert len(telemetry.spans()) >= 30 and len(telemetry.audit) >= 40
    assert telemetry.log_records() or telemetry.audit
    exposure.check()


def test_the_scan_finds_what_it_looks_for(idp, telemetry, caplog):
    """Control: values known to be in each sink are reported there (the scan is not vacuous)."""
    scan = Exposure(telemetry, caplog)
    with serve_app(idp) as running:
        http = scan.browser(running)
        page = http.get("/oauth/callback", params={"code": "c", "state": "s" * 40})
        assert error_code(page) == "issuer_missing"
        assert http.get("/reports", headers={"Accept": "text/html"}).status_code == 302
        scan.close()
        # In telemetry (span attributes, audit), on the error page, in a Location.
        scan.secret(idp.issuer, "id=dash-oauth-error", "/oauth/login?next=%2Freports")
    with pytest.raises(AssertionError) as found:
        scan.check()
    report = str(found.value)
    assert "in telemetry" in report and "in logs" in report
    assert "in page 0 GET /oauth/callback" in report
    assert "in location 0 GET /reports" in report


def test_store_keeps_no_secret_in_the_clear(idp, exposure, telemetry, tmp_path):
    """Sessions and login values at rest: sealed, and keyed by hashes.

    A copy of the store's files (a backup, a shared disk) must not give away a
    token, a session id, or a pending login's state, verifier or nonce.
    """
    store_dir = tmp_path / "store"
    with serve(idp, store=DiskcacheStore(store_dir)) as running:
        done = exposure.browser(running)
        exposure.sign_in(done)
        tokens = _current_tokens(exposure, running, done)
        pending = exposure.browser(running)
        waiting = exposure.login(pending, exposure.start(pending))
        values = _one_time_values(exposure, running, waiting.state)
        on_disk = b"".join(p.read_bytes() for p in store_dir.rglob("*") if p.is_file())
        assert b"session:" in on_disk and b"state:" in on_disk  # the files were read
        secrets = [
            tokens.access_token,
            tokens.refresh_token,
            tokens.id_token,
            session_cookie(done.cookies),
            waiting.state,
            values["v"],
            values["n"],
            running.registered.client_secret,
        ]
        leaked = [s[:10] for s in secrets if s and s.encode() in on_disk]
        assert not leaked, f"in the store's files: {leaked}"
        assert waiting.deliver(pending).status_code == 303  # and the login still works
