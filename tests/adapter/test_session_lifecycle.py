"""Session lifecycle against the real provider: refresh, expiry, re-auth, session end."""

from __future__ import annotations

import threading
import time

from dash_oauth_otel import introspect_token
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.core.token import OAuthToken
from tests.adapter.conftest import app_and_browser
from tests.cookies import session_cookie
from tests.idp.harness import login


def _log_in(http, next_path="/"):
    first = http.get(f"/oauth/login?next={next_path}")
    result = login(first.headers["location"], http_client=http)
    landed = result.deliver(http)
    assert landed.status_code == 303, landed.text
    return landed


def _session(running, http):
    sid = session_cookie(http.cookies)
    return running.module.sessions.load(sid)


def test_refresh_on_request_with_rotation(idp, telemetry):
    with app_and_browser(idp, access_token_ttl=3, refresh_lead_seconds=1) as (running, http):
        _log_in(http)
        first = _session(running, http).token
        time.sleep(2.2)
        assert http.get("/oauth/status").json()["authenticated"] is True
        second = _session(running, http).token
        assert second.access_token != first.access_token
        assert second.refresh_token != first.refresh_token
        assert introspect_token(running.client, second, "access").active
    events = telemetry.events("audit_token_refresh")
    assert len(events) == 1 and events[0]["refresh_token_rotated"] is True


def test_concurrent_refresh_is_single_flight(idp, telemetry):
    with app_and_browser(idp, access_token_ttl=3, refresh_lead_seconds=1) as (running, http):
        _log_in(http)
        time.sleep(2.2)
        cookies = dict(http.cookies)
        results: list[bool] = []

        def hit() -> None:
            with running.http() as other:
                other.cookies.update(cookies)
                results.append(other.get("/oauth/status").json()["authenticated"])

        threads = [threading.Thread(target=hit) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [True] * 6
        assert http.get("/oauth/status").json()["authenticated"] is True
    # One refresh for six concurrent requests: the grant was never replayed.
    assert len(telemetry.events("audit_token_refresh")) == 1
    assert not telemetry.events("audit_session_ended")


def test_refresh_failure_on_expired_token_ends_session(idp, telemetry):
    with app_and_browser(idp, access_token_ttl=2, refresh_lead_seconds=1) as (_running, http):
        _log_in(http)
        idp.fail_token_endpoint(times=5)
        time.sleep(2.1)
        status = http.get("/oauth/status").json()
        assert status == {
            "authenticated": False,
            "error": "token_refresh_error",
            "login_url": "/oauth/login",
        }
    ended = telemetry.events("audit_session_ended")
    assert ended and ended[0]["reason"] == "token_refresh_error"


def test_refresh_failure_keeps_stale_session_when_indefinite(idp, telemetry):
    with app_and_browser(
        idp, access_token_ttl=2, refresh_lead_seconds=1, indefinite_session=True
    ) as (_running, http):
        _log_in(http)
        idp.fail_token_endpoint(times=5)
        time.sleep(2.1)
        status = http.get("/oauth/status").json()
        assert status["authenticated"] is True
        assert status["stale"] is True
        assert status["error"] == "token_refresh_error"
    assert telemetry.events("audit_refresh_failed_but_kept_session")


def test_transient_refresh_failure_keeps_a_still_valid_token(idp, telemetry):
    with app_and_browser(idp, access_token_ttl=6, refresh_lead_seconds=3) as (running, http):
        _log_in(http)
        idp.fail_token_endpoint(times=1)
        time.sleep(3.2)  # inside the refresh lead, the token still valid
        status = http.get("/oauth/status").json()
        assert status["authenticated"] is True and status["stale"] is False
        record = _session(running, http)
        assert record.refresh_failures == 1 and record.next_refresh_at > time.time()


def test_idle_sessions_end_and_are_revoked_by_the_sweeper(idp, telemetry):
    with app_and_browser(idp, idle_timeout=1, revoke_on_session_end=True) as (running, http):
        _log_in(http)
        token = _session(running, http).token
        time.sleep(1.2)
        assert running.module.sweep() == 1
        assert running.module.sweep() == 0
        assert _session(running, http) is None
        assert introspect_token(running.client, token, "refresh").active is False
    ended = telemetry.events("audit_session_ended")
    assert [e["reason"] for e in ended] == ["idle_timeout"]
    assert [e["which"] for e in telemetry.events("audit_token_revocation")] == ["refresh", "access"]
    assert telemetry.spans("dash_oauth_otel.session.end.revoke")


def test_a_short_idle_timeout_is_honoured_while_the_session_is_in_use(idp, telemetry):
    """``idle_timeout=3``: activity every second keeps the session for twice that and
    more (its last activity is written often enough); then three idle seconds end it."""
    with app_and_browser(idp, idle_timeout=3) as (running, http):
        _log_in(http)
        for _ in range(8):
            time.sleep(1.0)
            assert http.get("/oauth/status").json()["authenticated"] is True
        assert running.module.sessions.touch_interval <= 0.75
        time.sleep(3.3)
        assert http.get("/oauth/status").json()["authenticated"] is False
    assert [e["reason"] for e in telemetry.events("audit_session_ended")] == ["idle_timeout"]


def test_max_lifetime_ends_session_lazily(idp):
    with app_and_browser(idp, max_lifetime=1) as (_running, http):
        _log_in(http)
        time.sleep(1.1)
        page = http.get("/")
        assert page.status_code == 302 and "/oauth/login" in page.headers["location"]
        assert http.get("/oauth/status").json()["authenticated"] is False


def test_reauth_after_seconds_forces_a_fresh_authentication(idp, telemetry):
    with app_and_browser(idp, reauth_after_seconds=1) as (running, http):
        _log_in(http)
        first_auth = _session(running, http).auth_time
        time.sleep(1.2)
        page = http.get("/reports")
        assert page.status_code == 302
        assert "reauth=1" in page.headers["location"]
        start = http.get(page.headers["location"])
        assert (
            "max_age=0" in start.headers["location"] or "request_uri" in start.headers["location"]
        )
        result = login(start.headers["location"], http_client=http)
        landed = result.deliver(http)
        assert landed.headers["location"] == "/reports"
        assert _session(running, http).auth_time > first_auth


def test_login_never_adopts_a_presented_session_id(running_app):
    # Session fixation: an id planted before login is never the session's id.
    with running_app.http() as http:
        http.cookies.set(
            running_app.module.cookies.session_name,
            "planted-by-attacker-" + "x" * 30,
            domain="127.0.0.1",
            path="/",
        )
        _log_in(http)
        issued = session_cookie(http.cookies)
        assert issued != "planted-by-attacker-" + "x" * 30
        assert running_app.module.sessions.load(issued) is not None


def test_a_new_login_replaces_and_ends_the_old_session(running_app, telemetry):
    with running_app.http() as http:
        _log_in(http)
        first = session_cookie(http.cookies)
        start = http.get("/oauth/login?next=/&reauth=1")
        result = login(start.headers["location"], http_client=http)
        result.deliver(http)
        second = session_cookie(http.cookies)
        assert first != second
        assert running_app.module.sessions.load(first) is None
        assert running_app.module.sessions.load(second) is not None
    assert telemetry.events("audit_session_ended")[0]["reason"] == "replaced_by_login"


def test_short_lived_tokens_are_not_refreshed_on_every_request(idp, telemetry):
    # A 4 s token with the default 60 s lead: the lead is capped at half the lifetime.
    with app_and_browser(idp, access_token_ttl=4) as (_running, http):
        _log_in(http)
        for _ in range(5):
            assert http.get("/oauth/status").json()["authenticated"]
        assert telemetry.events("audit_token_refresh") == []
        time.sleep(2.1)
        assert http.get("/oauth/status").json()["authenticated"]
        assert len(telemetry.events("audit_token_refresh")) == 1


class _Clock:
    """A session clock the test moves by hand (token expiry still uses real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_remembered_quiet_window_ends_with_the_idle_timeout(idp, telemetry):
    # The guard remembers, per record, until when nothing about it can change;
    # moving the session clock past a bound must be seen by the next request.
    with app_and_browser(idp, idle_timeout=600) as (running, http):
        clock = _Clock()
        running.module.sessions.clock = clock
        _log_in(http)
        for _ in range(3):
            assert http.get("/").status_code == 200
        first = _session(running, http)
        clock.now += 20  # past the activity write interval, within the idle timeout
        assert http.get("/").status_code == 200
        touched = _session(running, http)
        assert touched.last_seen > first.last_seen
        assert http.get("/").status_code == 200
        clock.now += 601
        page = http.get("/")
        assert page.status_code == 302 and "/oauth/login" in page.headers["location"]
    assert [e["reason"] for e in telemetry.events("audit_session_ended")] == ["idle_timeout"]


def test_a_remembered_quiet_window_ends_with_the_lifetime(idp, telemetry):
    with app_and_browser(idp, max_lifetime=3600) as (running, http):
        clock = _Clock()
        running.module.sessions.clock = clock
        _log_in(http)
        assert http.get("/").status_code == 200
        assert http.get("/").status_code == 200
        clock.now += 3601
        assert http.get("/").status_code == 302
    assert [e["reason"] for e in telemetry.events("audit_session_ended")] == ["max_lifetime"]


def test_a_remembered_quiet_window_ends_when_the_token_is_due(idp, telemetry):
    with app_and_browser(idp, access_token_ttl=3, refresh_lead_seconds=1) as (running, http):
        _log_in(http)
        first = _session(running, http).token
        for _ in range(3):
            assert http.get("/").status_code == 200
        assert telemetry.events("audit_token_refresh") == []
        time.sleep(2.2)
        assert http.get("/").status_code == 200
        assert _session(running, http).token.access_token != first.access_token
    assert len(telemetry.events("audit_token_refresh")) == 1


def test_a_session_ended_elsewhere_is_not_served_from_memory(idp, telemetry):
    with app_and_browser(idp) as (running, http):
        _log_in(http)
        assert http.get("/").status_code == 200
        assert http.get("/").status_code == 200
        sid = session_cookie(http.cookies)
        assert running.module.sessions.delete(sid) is not None
        assert http.get("/").status_code == 302


def test_session_records_keep_the_login_correlation_id():
    record = SessionRecord(
        sid="s" * 43,
        token=OAuthToken(access_token="a"),
        created_at=1.0,
        last_seen=2.0,
        auth_time=1.0,
        trace_id="login-trace-id",
    )
    assert SessionRecord.from_json(record.to_json()) == record
    # A record written before the id was kept still opens, without one.
    older = {k: v for k, v in record.to_json().items() if k != "trace_id"}
    assert SessionRecord.from_json(older).trace_id is None
