"""OpenID Connect Back-Channel Logout 1.0 against the real provider, over HTTP.

Named after the OpenID Foundation's ``oidcc-client-back-channel-logout-rp``
test plan: the provider itself POSTs the logout token when the user's session
there ends (the success case); the refusals POST tokens made by the provider's
test-only API with one defect each, and must get 400 and end nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dash_oauth_otel import introspect_token
from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.idp.harness import TestProvider
from tests.idp.harness import login
from tests.idp.harness import logout

ROUTE = "/oauth/backchannel-logout"


def _log_in(http: httpx.Client, username: str = "alice") -> None:
    first = http.get("/oauth/login?next=/")
    landed = login(first.headers["location"], http_client=http, username=username).deliver(http)
    assert landed.status_code == 303, landed.text[:300]
    assert http.get("/oauth/status").json()["authenticated"] is True


def _post(running: RunningApp, token: str | None = None, **kwargs) -> httpx.Response:
    data = {"logout_token": token} if token is not None else None
    return httpx.post(running.origin + ROUTE, data=data, timeout=15, **kwargs)


def _signed_in(http: httpx.Client) -> bool:
    return bool(http.get("/oauth/status").json()["authenticated"])


# -- success: the provider ends its session ---------------------------------------------


def test_oidcc_client_test_back_channel_logout(idp, telemetry):
    options = {"backchannel_logout": True, "revoke_on_session_end": True}
    with serve_app(idp, **options) as running, running.http() as http:
        _log_in(http)
        record = running.module.sessions.load(session_cookie(http.cookies))
        assert record is not None and record.op_sid  # the ID token's sid, kept
        assert introspect_token(running.client, record.token, "access").active
        # The user signs out at the provider; it POSTs a logout token to the app.
        logout(idp.endpoint("end_session"), http_client=http)
        assert not _signed_in(http)
        page = http.get("/")
        assert page.status_code == 302 and "/oauth/login" in page.headers["location"]
        assert introspect_token(running.client, record.token, "access").active is False
    [done] = telemetry.events("audit_backchannel_logout")
    assert done["sessions_ended"] == 1 and done["sid_digest"] and done["sub_digest"]
    [ended] = telemetry.events("audit_session_ended")
    assert (ended["reason"], ended["revoke"]) == ("backchannel_logout", True)
    revoked = telemetry.events("audit_token_revocation")
    assert [(e["which"], e["revoked"]) for e in revoked] == [("refresh", True), ("access", True)]
    [span] = telemetry.spans("dash_oauth_otel.backchannel_logout")
    assert span.attributes["oauth.logout.sessions_ended"] == 1
    assert span.attributes["oauth.phase"] == "backchannel_logout"
    assert record.op_sid not in str(dict(span.attributes))


def test_a_logout_token_with_only_sub_ends_every_session_of_that_user(idp, telemetry):
    with (
        serve_app(idp, backchannel_logout=True) as running,
        running.http() as first,
        running.http() as second,
    ):
        _log_in(first, "dora")
        _log_in(second, "dora")
        response = _post(running, idp.logout_token(running.registered, sub="dora"))
        assert response.status_code == 200, response.text
        assert response.content == b"" and response.headers["cache-control"] == "no-store"
        assert not _signed_in(first) and not _signed_in(second)
    assert telemetry.events("audit_backchannel_logout")[0]["sessions_ended"] == 2


# -- refusals: one app, one signed-in session, many defective tokens ----------------------


class Signed:
    def __init__(self, running: RunningApp, http: httpx.Client) -> None:
        self.running = running
        self.http = http
        record = running.module.sessions.load(session_cookie(http.cookies))
        assert record is not None and record.op_sid
        self.sid = record.op_sid
        self.sub = record.token.subject


@pytest.fixture(scope="module")
def signed(idp_server: TestProvider) -> Iterator[Signed]:
    with serve_app(idp_server, backchannel_logout=True) as running, running.http() as http:
        _log_in(http)
        yield Signed(running, http)


def _refused(signed: Signed, telemetry, response: httpx.Response, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == "invalid_request" and body["error_description"]
    assert _signed_in(signed.http), "a refused logout token ended the session"
    [event] = telemetry.events("audit_backchannel_logout_rejected")
    assert event["reason"] == reason
    assert telemetry.events("audit_session_ended") == []
    [span] = telemetry.spans("dash_oauth_otel.backchannel_logout")
    assert span.status.status_code.name == "ERROR"
    assert [e.name for e in span.events] == ["exception"]
    assert signed.sid not in str(event) and signed.sid not in str(dict(span.attributes))


def _defect(idp: TestProvider, signed: Signed, defect: str | None, **claims) -> str:
    claims = {"sid": signed.sid, "sub": signed.sub, **claims}
    return idp.logout_token(signed.running.registered, defect=defect, **claims)


def _assert_refused(idp, signed, telemetry, defect: str, reason: str) -> None:
    _refused(signed, telemetry, _post(signed.running, _defect(idp, signed, defect)), reason)


def test_oidcc_client_test_back_channel_logout_alg_none(idp, signed, telemetry):
    _assert_refused(idp, signed, telemetry, "alg_none", "alg_not_allowed")


def test_oidcc_client_test_back_channel_logout_no_event(idp, signed, telemetry):
    _assert_refused(idp, signed, telemetry, "no_event", "missing_events")


def test_oidcc_client_test_back_channel_logout_with_nonce(idp, signed, telemetry):
    _assert_refused(idp, signed, telemetry, "with_nonce", "nonce_present")


def test_oidcc_client_test_back_channel_logout_wrong_alg(idp, signed, telemetry):
    # HS256 keyed with the client secret: HMAC is never accepted, whatever the key.
    _assert_refused(idp, signed, telemetry, "wrong_alg", "alg_not_allowed")


def test_oidcc_client_test_back_channel_logout_wrong_aud(idp, signed, telemetry):
    _assert_refused(idp, signed, telemetry, "wrong_aud", "wrong_audience")


def test_oidcc_client_test_back_channel_logout_wrong_event(idp, signed, telemetry):
    _assert_refused(idp, signed, telemetry, "wrong_event", "wrong_event")


def test_oidcc_client_test_back_channel_logout_wrong_issuer(idp, signed, telemetry):
    _assert_refused(idp, signed, telemetry, "wrong_issuer", "wrong_issuer")


@pytest.mark.parametrize(
    ("defect", "reason"),
    [
        ("no_sid_sub", "missing_sid_and_sub"),
        ("no_jti", "missing_jti"),
        ("no_iat", "missing_iat"),
        ("wrong_typ", "wrong_typ"),
        ("bad_signature", "bad_signature"),
    ],
)
def test_back_channel_logout_other_defects(idp, signed, telemetry, defect, reason):
    _assert_refused(idp, signed, telemetry, defect, reason)


def test_back_channel_logout_replayed_jti(idp, signed, telemetry):
    # A valid token about another provider session: accepted once (it ends nothing here).
    token = _defect(idp, signed, None, sid="another-provider-session", jti="jti-replay-1")
    assert _post(signed.running, token).status_code == 200
    assert telemetry.events("audit_backchannel_logout")[0]["sessions_ended"] == 0
    telemetry.audit.clear()
    again = _post(signed.running, token)
    assert again.status_code == 400
    assert _signed_in(signed.http)
    [event] = telemetry.events("audit_backchannel_logout_rejected")
    assert event["reason"] == "replayed_jti"
    # A new token reusing the jti, now about this very session, is refused too.
    telemetry.audit.clear()
    reused = _defect(idp, signed, None, jti="jti-replay-1")
    assert _post(signed.running, reused).status_code == 400
    assert _signed_in(signed.http)
    assert telemetry.events("audit_backchannel_logout_rejected")[0]["reason"] == "replayed_jti"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"json": {"logout_token": "x"}}, "unsupported_media_type"),
        ({"content": b"logout_token=" + b"a" * 40000}, "body_too_large"),
        ({"content": b"other=1"}, "malformed"),
        ({"content": b"logout_token=a&logout_token=b"}, "malformed"),
    ],
    ids=["json", "too_large", "no_token", "two_tokens"],
)
def test_back_channel_logout_refuses_malformed_requests(signed, telemetry, kwargs, reason):
    if "content" in kwargs:
        kwargs["headers"] = {"content-type": "application/x-www-form-urlencoded"}
    response = _post(signed.running, **kwargs)
    _refused(signed, telemetry, response, reason)
