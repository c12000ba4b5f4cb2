"""Token work in worker processes, through the Dash module, against the real provider."""

from __future__ import annotations

import time

from dash_oauth_otel.telemetry import spans
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.idp.harness import login
from tests.workers.conftest import worker_factory
from tests.workers.conftest import worker_spans


def _handle(page) -> str:
    return page.text.split("?complete=")[1].split('"')[0].split("'")[0]


def _async_login(http, next_path="/done"):
    start = http.get(f"/oauth/login?next={next_path}")
    waiting = login(start.headers["location"], http_client=http).deliver(http)
    assert waiting.status_code == 200 and "Signing you in" in waiting.text
    handle = _handle(waiting)
    deadline = time.monotonic() + 30
    while http.get(f"/oauth/status?login={handle}").json()["login"] == "pending":
        assert time.monotonic() < deadline, "the worker never answered"
        time.sleep(0.2)
    return http.get(f"/oauth/callback?complete={handle}")


def test_async_login_runs_the_exchange_in_a_worker(idp, pool, span_file, telemetry):
    with serve_app(idp, factory=worker_factory(pool)) as running, running.http() as http:
        landed = _async_login(http)
        assert landed.status_code == 303 and landed.headers["location"] == "/done"
        status = http.get("/oauth/status").json()
        assert status["authenticated"] and status["user"]["sub"] == "alice"
    callback = telemetry.span(spans.CALLBACK)
    assert callback.attributes["oauth.async"] is True
    remote = worker_spans(span_file)
    bridge = next(s for s in remote if s["name"] == spans.CALLBACK_WORKER)
    exchange = next(s for s in remote if s["name"] == spans.TOKEN_EXCHANGE)
    # One trace: the worker's bridge span is a child of the main process's callback span.
    assert bridge["trace_id"] == callback.context.trace_id
    assert bridge["parent_id"] == callback.context.span_id
    assert exchange["parent_id"] == bridge["span_id"]
    assert bridge["pid"] != callback.attributes["dash.process_id"]
    assert bridge["attributes"]["dash.main_process_id"] == callback.attributes["dash.process_id"]
    # Audit events emitted in the worker reached this process's hook.
    worker_events = [e for e in telemetry.audit if e.get("process_id") == bridge["pid"]]
    assert {"audit_token_exchange", "audit_login_success"} <= {e["type"] for e in worker_events}
    assert all(
        e["main_process_id"] == callback.attributes["dash.process_id"] for e in worker_events
    )


def test_refresh_in_a_worker_with_one_trace(idp, pool, span_file, telemetry):
    factory = worker_factory(pool)
    with (
        serve_app(idp, factory=factory, access_token_ttl=4, refresh_lead_seconds=2) as running,
        running.http() as http,
    ):
        _async_login(http)
        time.sleep(2.2)  # inside the lead: refreshed in the background
        assert http.get("/oauth/status").json()["authenticated"]
        deadline = time.monotonic() + 20
        while not telemetry.events("audit_token_refresh"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(0.5)
        sid = session_cookie(http.cookies)
        record = running.module.sessions.load(sid)
        assert record.epoch == 1
        csrf = http.get("/oauth/status").json()["csrf_token"]
        assert http.post("/oauth/logout", data={"csrf_token": csrf}).status_code in (200, 303)
    parent = telemetry.span(spans.REFRESH)
    bridge = next(s for s in worker_spans(span_file) if s["name"] == spans.REFRESH_WORKER)
    assert bridge["parent_id"] == parent.context.span_id
    assert bridge["trace_id"] == parent.context.trace_id
    # One correlation id from the login to the end of its session, the refresh
    # in the worker process included.
    (request,) = telemetry.spans(spans.LOGIN_REQUEST)
    correlation = request.attributes["dash_oauth_otel.trace_id"]
    assert record.trace_id == correlation
    remote = next(s for s in worker_spans(span_file) if s["name"] == spans.REFRESH)
    assert remote["attributes"]["dash_oauth_otel.trace_id"] == correlation
    assert parent.attributes["dash_oauth_otel.trace_id"] == correlation
    followed = [
        "audit_session_started",
        "audit_token_refresh",
        "audit_logout",
        "audit_session_ended",
    ]
    for event_type in followed:
        assert [e["trace_id"] for e in telemetry.events(event_type)] == [correlation], event_type


def test_logout_while_an_async_login_is_in_flight(idp, pool, span_file, telemetry):
    with serve_app(idp, factory=worker_factory(pool)) as running, running.http() as http:
        start = http.get("/oauth/login?next=/x")
        result = login(start.headers["location"], http_client=http)
        idp.delay_token_endpoint(ms=2500)
        waiting = result.deliver(http)
        handle = _handle(waiting)
        http.post("/oauth/logout", headers={"Origin": running.origin})
        deadline = time.monotonic() + 30
        while http.get(f"/oauth/status?login={handle}").json()["login"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        page = http.get(f"/oauth/callback?complete={handle}")
        assert page.status_code == 400 and "signed out while the sign-in" in page.text
        assert http.get("/oauth/status").json()["authenticated"] is False
        time.sleep(1.0)
    revoked = telemetry.events("audit_stale_result_revoked")
    assert revoked and revoked[0]["operation"] == "login"
    assert any(e["revoked"] for e in telemetry.events("audit_token_revocation"))


def test_otel_environment_changes_reach_the_next_task(idp, pool, span_file, monkeypatch, telemetry):
    with serve_app(idp, factory=worker_factory(pool)) as running, running.http() as http:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "first-name")
        _async_login(http)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "second-name")
        http.cookies.clear()
        _async_login(http)
    services = [s["service"] for s in worker_spans(span_file) if s["name"] == spans.CALLBACK_WORKER]
    assert services == ["first-name", "second-name"]
