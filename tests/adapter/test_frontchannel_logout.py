"""Front-Channel Logout 1.0 over plain HTTP (the browser suite frames it cross-site)."""

from __future__ import annotations

from tests.adapter.conftest import serve_app
from tests.idp.harness import login

ROUTE = "/oauth/frontchannel-logout"


def _log_in(http):
    first = http.get("/oauth/login?next=/")
    assert login(first.headers["location"], http_client=http).deliver(http).status_code == 303


def _signed_in(http):
    return http.get("/oauth/status").json()["authenticated"]


def test_without_iss_and_sid_a_frame_ends_the_cookies_session(idp, telemetry):
    with serve_app(idp) as running, running.http() as http:
        _log_in(http)
        done = http.get(ROUTE, headers={"Sec-Fetch-Dest": "iframe"})
        assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
        assert "x-frame-options" not in done.headers
        assert (
            'dash_oauth_session=""' in done.headers["set-cookie"]
            or "Max-Age=0" in (done.headers["set-cookie"])
        )
        assert not _signed_in(http)
    assert telemetry.events("audit_frontchannel_logout")[0]["sessions_ended"] == 1


def test_a_top_level_navigation_cannot_end_the_session(idp, telemetry):
    with serve_app(idp) as running, running.http() as http:
        _log_in(http)
        refused = http.get(ROUTE, headers={"Sec-Fetch-Dest": "document"})
        assert refused.status_code == 400 and refused.headers["cache-control"] == "no-store"
        assert _signed_in(http)
        assert http.get(ROUTE, params={"sid": "x"}).status_code == 400
        assert http.get(ROUTE, params={"iss": running.client.provider.issuer}).status_code == 400
        assert _signed_in(http)
    reasons = [e["reason"] for e in telemetry.events("audit_frontchannel_logout_rejected")]
    assert reasons == ["not_framed", "missing_iss", "missing_sid"]
    assert telemetry.events("audit_session_ended") == []
