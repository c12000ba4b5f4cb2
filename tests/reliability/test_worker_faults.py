"""A worker process killed while it refreshes a session's token.

The exchange-time version (a worker killed during a login) is
``tests/workers/test_races.py::test_a_worker_killed_during_an_exchange_gives_a_typed_error``.
Here the refresh runs in the background (the token is still valid), its
worker is killed while the provider holds the request, and the session must
stay usable or end with a reason: never a 500, never a record that does not
load, never another user's tokens.
"""

from __future__ import annotations

import os
import signal
import time

from dash_oauth_otel.workers import ProcessPoolBackend
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.workers.conftest import worker_factory
from tests.workers.flows import async_login
from tests.workers.flows import wait_for


def _pool_pids(backend: ProcessPoolBackend) -> set[int]:
    pool = backend._pool
    return set(pool._processes) if pool is not None and pool._processes else set()


def test_worker_killed_during_a_background_refresh(idp, telemetry, tmp_path, monkeypatch):
    """SIGKILL to the worker refreshing the token (the provider holds the request 3 s).

    The refresh fails as a transport error (``worker_failed``).  The token is
    still valid, so the session is kept as it was, marked with the error, and
    retried after a back-off on a new pool process.  Whether that retry
    succeeds depends on whether the provider already rotated the refresh token
    for the lost request: the session is then refreshed, or ends with
    ``token_refresh_error``.  At every step the session loads and is Alice's,
    or is gone with an audited reason.
    """
    monkeypatch.setenv("TEST_SPAN_FILE", str(tmp_path / "worker-spans.jsonl"))
    backend = ProcessPoolBackend(max_workers=1)
    try:
        with (
            serve_app(
                idp, factory=worker_factory(backend), access_token_ttl=6, refresh_lead_seconds=3
            ) as running,
            running.http() as http,
        ):
            landed, _ = async_login(http)
            assert landed.status_code == 303
            sid = session_cookie(http.cookies)
            before = running.module.sessions.load(sid)
            victims = _pool_pids(backend)
            assert len(victims) == 1

            idp.delay_token_endpoint(ms=3000)
            time.sleep(3.2)  # inside the refresh lead, the token still valid
            assert http.get("/oauth/status").json()["user"]["sub"] == "alice"
            time.sleep(0.8)  # the worker is waiting on the provider now
            for pid in victims:
                os.kill(pid, signal.SIGKILL)

            def failed_once():
                record = running.module.sessions.load(sid)
                return record is None or record.refresh_failures >= 1

            wait_for(failed_once, timeout=15, what="the failed background refresh")
            kept = running.module.sessions.load(sid)
            assert kept is not None, telemetry.events("audit_session_ended")
            assert kept.token.access_token == before.token.access_token
            assert kept.error == "token_refresh_error" and kept.stale is False
            status = http.get("/oauth/status").json()
            assert status["authenticated"] is True and status["user"]["sub"] == "alice"

            # Past the token's life: refreshed on a new worker, or ended with a reason.
            time.sleep(3.0)
            status = http.get("/oauth/status").json()
            record = running.module.sessions.load(sid)
            if status["authenticated"]:
                assert status["user"]["sub"] == "alice"
                assert record is not None and record.epoch >= 1
                assert _pool_pids(backend).isdisjoint(victims)
            else:
                assert status["error"] == "token_refresh_error"
                assert record is None
                ended = telemetry.events("audit_session_ended")
                assert [e["reason"] for e in ended] == ["token_refresh_error"]
            page = http.get("/reports", headers={"Accept": "text/html"})
            assert page.status_code in (200, 302)
    finally:
        backend.shutdown()
    refreshes = [e for e in telemetry.audit if e["type"] == "audit_login_failed"]
    assert refreshes == []  # a refresh failure is not reported as a failed login
