"""Token work on real Celery workers (Redis broker and result backend), through the Dash module.

Each test serves the example app with ``workers=CeleryBackend(...)`` and starts
its own ``celery worker`` subprocess on a queue of its own, in a Redis
database kept for these tests.  The worker rebuilds the client from
``tests.workers.worker_client:client`` and exports its spans to the test's
span file (``tests.workers.worker_client:setup_telemetry``), so the test can
join them with the spans of this process.  ``MONITOR`` records every command
Redis receives meanwhile, to show that no code, token or secret crosses the
broker in clear.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.workers import CeleryBackend
from examples.basic_app import create_app
from tests.adapter.conftest import SECRET
from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.idp.harness import TestProvider
from tests.idp.harness import login
from tests.logout import is_logout_answer
from tests.workers.celery_app import make_app
from tests.workers.conftest import CLIENT_PATH
from tests.workers.conftest import WORKER_INIT
from tests.workers.conftest import worker_spans
from tests.workers.flows import REDIS_HOST
from tests.workers.flows import REDIS_PORT
from tests.workers.flows import RedisMonitor
from tests.workers.flows import Service
from tests.workers.flows import app_celery_worker
from tests.workers.flows import assert_absent
from tests.workers.flows import async_login
from tests.workers.flows import celery_worker
from tests.workers.flows import decoded_bodies
from tests.workers.flows import forget_queue
from tests.workers.flows import free_port
from tests.workers.flows import redis_dump
from tests.workers.flows import subprocess_env
from tests.workers.flows import wait_for
from tests.workers.flows import wait_for_login
from tests.workers.flows import waiting_handle

DB = 11  # the Redis database of the token-task tests (the stores' tests use 0)
EXAMPLE_DB = 13
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"

# The main-process parent span of each worker bridge span (the catalogued parenting).
PARENTS = {
    spans.CALLBACK_WORKER: spans.CALLBACK,
    spans.REFRESH_WORKER: spans.REFRESH,
    spans.TOKEN_REVOKE_WORKER: spans.TOKEN_REVOKE,
    spans.TOKEN_INTROSPECT_WORKER: spans.TOKEN_INTROSPECT,
}


@contextmanager
def served_with_celery(
    idp: TestProvider,
    tmp_path: Path,
    span_file: Path,
    monkeypatch: Any,
    **options: Any,
) -> Iterator[tuple[RunningApp, Service]]:
    """The example app whose token work runs on a Celery worker started for the test."""
    queue = f"dash-oauth-otel-test-{uuid.uuid4().hex[:12]}"
    backend = CeleryBackend(make_app(URL, queue), queue=queue)

    def factory(client: Any, **opts: Any) -> Any:
        return create_app(
            client,
            workers=backend,
            client_path=CLIENT_PATH,
            worker_init=WORKER_INIT,
            worker_timeout=30,
            **opts,
        )

    with serve_app(idp, factory=factory, **options) as running:
        worker = app_celery_worker(
            running,
            issuer=idp.issuer,
            broker_url=URL,
            queue=queue,
            span_file=span_file,
            log=tmp_path / "celery-worker.log",
            monkeypatch=monkeypatch,
        )
        try:
            yield running, worker
        finally:
            worker.stop()
            forget_queue(DB, queue)


def _check_parenting(remote: list[dict[str, Any]], local: list[Any], bridge: str) -> None:
    """Every worker ``bridge`` span is the child of a main-process span of the catalogued name."""
    found = [s for s in remote if s["name"] == bridge]
    assert found, f"no {bridge} span from the worker: {sorted({s['name'] for s in remote})}"
    parents = {s.context.span_id: s for s in local if s.name == PARENTS[bridge]}
    for span in found:
        parent = parents.get(span["parent_id"])
        assert parent is not None, f"{bridge} has no {PARENTS[bridge]} parent in this process"
        assert span["trace_id"] == parent.context.trace_id
        assert parent.attributes["oauth.async"] is True
        assert span["attributes"]["dash.main_process_id"] == os.getpid()
        assert span["pid"] != os.getpid()
        children = [s for s in remote if s["parent_id"] == span["span_id"]]
        assert children, f"{bridge} opened no operation span beneath it"
        assert all(c["trace_id"] == span["trace_id"] for c in children)


def test_login_refresh_introspect_and_revoke_on_celery_workers(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    monitor = RedisMonitor(tmp_path / "redis-monitor.log")
    try:
        with (
            served_with_celery(
                idp, tmp_path, span_file, monkeypatch, access_token_ttl=4, refresh_lead_seconds=2
            ) as (running, worker),
            running.http() as http,
        ):
            module = running.module
            landed, result = async_login(http)
            assert landed.status_code == 303 and landed.headers["location"] == "/done"
            status = http.get("/oauth/status").json()
            assert status["authenticated"] and status["user"]["sub"] == "alice"
            sid = session_cookie(http.cookies)
            first = module.sessions.load(sid).token

            # Refresh: inside the lead, the request starts it in the background.
            time.sleep(max(0.0, first.expires_at - 1.7 - time.time()))
            assert http.get("/oauth/status").json()["authenticated"]
            wait_for(lambda: module.sessions.load(sid).epoch == 1, what="the refresh")
            second = module.sessions.load(sid).token
            assert second.access_token != first.access_token
            assert second.refresh_token and second.refresh_token != first.refresh_token

            # Introspection through the module's dispatcher.
            found = module.dispatcher.run(
                module.client, "introspect", {"token": second.to_dict(), "which": "access"}
            )
            assert found["supported"] and found["active"] is True

            # Logout revokes the refresh and access tokens through the worker.
            csrf = http.get("/oauth/status").json()["csrf_token"]
            out = http.post(
                "/oauth/logout", data={"csrf_token": csrf}, headers={"Origin": running.origin}
            )
            assert is_logout_answer(out)
            wait_for(
                lambda: len(telemetry.events("audit_token_revocation")) >= 2, what="revocations"
            )
            assert all(e["revoked"] for e in telemetry.events("audit_token_revocation"))
            gone = module.dispatcher.run(
                module.client, "introspect", {"token": second.to_dict(), "which": "refresh"}
            )
            assert gone["active"] is False
            assert http.get("/oauth/status").json()["authenticated"] is False
            worker_log = worker.output()
    finally:
        monitor.stop()

    # One trace per operation, across the two processes, with the catalogued parenting.
    remote = worker_spans(span_file)
    local = telemetry.spans()
    for bridge in PARENTS:
        _check_parenting(remote, local, bridge)
    exchange = next(s for s in remote if s["name"] == spans.TOKEN_EXCHANGE)
    bridge = next(s for s in remote if s["name"] == spans.CALLBACK_WORKER)
    assert exchange["parent_id"] == bridge["span_id"]
    assert len([s for s in remote if s["name"] == spans.TOKEN_REVOKE_WORKER]) == 2
    # The worker's audit events reached this process's hook.
    worker_pids = {s["pid"] for s in remote}
    from_workers = {e["type"] for e in telemetry.audit if e.get("process_id") in worker_pids}
    assert {
        "audit_token_exchange",
        "audit_login_success",
        "audit_token_refresh",
        "audit_token_introspection",
        "audit_token_revocation",
    } <= from_workers

    # Nothing secret crossed the broker: neither the messages (bodies decoded)
    # nor the results, nor anything left in the database.
    traffic = monitor.text()
    bodies = "\n".join(decoded_bodies(traffic))
    assert bodies.count(CLIENT_PATH) >= 6, "the task messages were not seen in the broker"
    assert "dash_oauth_otel.run_task" in traffic
    leftovers = redis_dump(DB)
    secrets_seen = [
        result.code,
        first.access_token,
        first.refresh_token,
        first.id_token,
        second.access_token,
        second.refresh_token,
        second.id_token,
        running.client.client_secret,
        SECRET,
        sid,
    ]
    assert_absent(
        secrets_seen,
        broker_traffic=traffic,
        message_bodies=bodies,
        redis_database=leftovers,
        worker_log=worker_log,
    )


def test_a_changed_otel_variable_reaches_the_celery_worker_for_the_next_task(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "celery-first")
    with (
        served_with_celery(idp, tmp_path, span_file, monkeypatch) as (running, _worker),
        running.http() as http,
    ):
        landed, _result = async_login(http)
        assert landed.status_code == 303
        token = running.module.sessions.load(session_cookie(http.cookies)).token
        monkeypatch.setenv("OTEL_SERVICE_NAME", "celery-second")
        running.module.dispatcher.run(
            running.module.client, "introspect", {"token": token.to_dict(), "which": "access"}
        )
        monkeypatch.delenv("OTEL_SERVICE_NAME")
        running.module.dispatcher.run(
            running.module.client, "introspect", {"token": token.to_dict(), "which": "refresh"}
        )
    remote = worker_spans(span_file)
    services = [
        (s["name"], s["service"])
        for s in remote
        if s["name"] in (spans.CALLBACK_WORKER, spans.TOKEN_INTROSPECT_WORKER)
    ]
    assert services == [
        (spans.CALLBACK_WORKER, "celery-first"),
        (spans.TOKEN_INTROSPECT_WORKER, "celery-second"),
        (spans.TOKEN_INTROSPECT_WORKER, None),  # unset on the main process: unset there too
    ]


def test_the_revocations_at_logout_continue_the_logouts_trace(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    with (
        served_with_celery(idp, tmp_path, span_file, monkeypatch) as (running, _worker),
        running.http() as http,
    ):
        landed, _result = async_login(http)
        assert landed.status_code == 303
        csrf = http.get("/oauth/status").json()["csrf_token"]
        out = http.post(
            "/oauth/logout", data={"csrf_token": csrf}, headers={"Origin": running.origin}
        )
        assert is_logout_answer(out)
        wait_for(lambda: len(telemetry.events("audit_token_revocation")) >= 2, what="revocations")
        wait_for(lambda: len(telemetry.spans(spans.TOKEN_REVOKE)) >= 2, what="token.revoke")
    logout = telemetry.span(spans.LOGOUT)
    revokes = telemetry.spans(spans.TOKEN_REVOKE)
    assert len(revokes) == 2
    # A user's logout revokes under its logout span (session.end.revoke is kept
    # for sessions that end otherwise): the revocations, and the workers' spans
    # beneath them, are in the logout's trace.
    assert telemetry.spans(spans.SESSION_END_REVOKE) == []
    assert all(r.parent is not None and r.parent.span_id == logout.context.span_id for r in revokes)
    assert all(r.context.trace_id == logout.context.trace_id for r in revokes)
    _check_parenting(worker_spans(span_file), telemetry.spans(), spans.TOKEN_REVOKE_WORKER)


# -- examples/redis_celery.py ------------------------------------------------------------


def test_the_redis_celery_example_signs_in(idp, tmp_path):
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client(
        [f"{origin}/oauth/callback"], post_logout_redirect_uris=[f"{origin}/oauth/signed-out"]
    )
    queue = f"dash-oauth-otel-example-{uuid.uuid4().hex[:12]}"
    namespace = f"example-{uuid.uuid4().hex[:12]}"
    env = subprocess_env(
        DASH_OAUTH_ISSUER=idp.issuer,
        DASH_OAUTH_CLIENT_ID=registered.client_id,
        DASH_OAUTH_CLIENT_SECRET=registered.client_secret or "",
        DASH_OAUTH_REDIRECT_URI=f"{origin}/oauth/callback",
        DASH_OAUTH_SECRET_KEY=SECRET,
        DASH_OAUTH_ALLOW_INSECURE_LOOPBACK="1",
        DASH_OAUTH_REDIS_URL=f"redis://{REDIS_HOST}:{REDIS_PORT}/{EXAMPLE_DB}",
        DASH_OAUTH_REDIS_NAMESPACE=namespace,
        DASH_OAUTH_CELERY_QUEUE=queue,
        OTEL_TRACES_EXPORTER="console",
    )
    worker_env = {k: v for k, v in env.items() if k != "OTEL_TRACES_EXPORTER"}
    with (
        celery_worker(
            "examples.redis_celery:celery_app",
            queue=queue,
            env=worker_env,
            log=tmp_path / "example-worker.log",
        ) as worker,
        Service(
            [sys.executable, "-m", "examples.redis_celery"],
            env=env,
            log=tmp_path / "example-web.log",
            ready=lambda out: "Running on" in out,
        ) as _web,
        httpx.Client(base_url=origin, timeout=30) as http,
    ):
        result_login = http.get("/oauth/login?next=/")
        assert result_login.status_code == 302
        result = login(result_login.headers["location"], http_client=http)
        handle = waiting_handle(result.deliver(http))
        assert wait_for_login(http, handle) == "done"
        landed = http.get(f"/oauth/callback?complete={handle}")
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        status = http.get("/oauth/status").json()
        assert status["authenticated"] and status["user"]["sub"] == "alice"
        # Sessions live in Redis under the example's namespace, sealed.
        db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=EXAMPLE_DB)
        try:
            keys = [k.decode() for k in db.scan_iter(match=f"{namespace}:session:*")]
            assert len(keys) == 1
            stored = redis_dump(EXAMPLE_DB)
            # The worker set up its SDK through worker_init, from the replayed OTEL_* values.
            wait_for(lambda: spans.CALLBACK_WORKER in worker.output(), what="the worker span")
            out = http.post(
                "/oauth/logout",
                data={"csrf_token": status["csrf_token"]},
                headers={"Origin": origin},
            )
            assert is_logout_answer(out)
            assert http.get("/oauth/status").json()["authenticated"] is False
            for key in db.scan_iter(match=f"{namespace}:*"):
                db.delete(key)
        finally:
            db.close()
        worker_log = worker.output()
    forget_queue(EXAMPLE_DB, queue)
    assert_absent(
        [result.code, registered.client_secret, SECRET],
        redis_database=stored,
        worker_log=worker_log,
    )
