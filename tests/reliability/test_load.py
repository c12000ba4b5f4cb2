"""200 concurrent logins on ``gunicorn -w 4``, with a worker restart in the middle.

Every piece of login state lives in the shared store (diskcache on one host,
Redis for several), so any worker may serve any step of any login.  The run
checks that nothing fails, that every login state is consumed (none left in
the store), that no session is ever seen as another user's, and that the
sessions established before ``SIGHUP`` replaced every worker are still there.

The 24-login version without restart is ``tests/adapter/test_multiprocess.py``;
this one reuses its WSGI entry point, ``tests/adapter/gunicorn_app.py``.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel import RedisStore
from tests.adapter.conftest import SECRET
from tests.gunicorn import free_port
from tests.gunicorn import start
from tests.idp.harness import login

USERS = 200
CONCURRENCY = 32


@dataclass
class Cluster:
    origin: str
    process: subprocess.Popen[bytes]
    store: Any
    log: Path

    def workers(self) -> set[int]:
        """The pids of gunicorn's current worker processes."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in path.read_text().split()}


def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(params=["diskcache", "redis"])
def cluster(request, idp, tmp_path):
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client(
        [f"{origin}/oauth/callback"], post_logout_redirect_uris=[f"{origin}/oauth/signed-out"]
    )
    namespace = f"test-load-{uuid.uuid4().hex}"
    env = {
        "TEST_ISSUER": idp.issuer,
        "TEST_CLIENT_ID": registered.client_id,
        "TEST_CLIENT_SECRET": registered.client_secret or "",
        "TEST_REDIRECT_URI": f"{origin}/oauth/callback",
        "TEST_SECRET": SECRET,
        "TEST_STORE_DIR": str(tmp_path / "store"),
    }
    if request.param == "redis":
        env["TEST_REDIS_NAMESPACE"] = namespace
    server = start(
        "tests.adapter.gunicorn_app:server",
        port=port,
        env=env,
        log=tmp_path / "gunicorn.log",
        args=("--timeout", "60", "--graceful-timeout", "30", "--backlog", "512"),
    )
    store = None
    try:
        server.wait_until_serving()
        if request.param == "redis":
            store = RedisStore.from_url("redis://127.0.0.1:6379/0", namespace=namespace)
        else:
            store = DiskcacheStore(tmp_path / "store")
        yield Cluster(origin, server.process, store, server.log)
    finally:
        server.stop()
        if store is not None:
            for prefix in ("session:", "state:", "lock:", "formpost:"):
                for key in list(store.scan(prefix)):
                    store.delete(key)
            store.close()


def _log_in(origin: str, user: str) -> dict[str, str]:
    """One user's whole login over HTTP; return the browser's cookies."""
    with httpx.Client(base_url=origin, timeout=60) as http:
        start = http.get(f"/oauth/login?next=/u/{user}")
        assert start.status_code == 302, start.text[:300]
        landed = login(start.headers["location"], http_client=http, username=user).deliver(http)
        assert landed.status_code == 303, landed.text[:600]
        assert landed.headers["location"] == f"/u/{user}"
        status = http.get("/oauth/status").json()
        assert status["authenticated"] and status["user"]["sub"] == user, status
        return dict(http.cookies)


def _whoami(origin: str, cookies: dict[str, str], times: int = 3) -> set[str | None]:
    """Who the session is, asked ``times`` times (spread over the workers)."""
    seen: set[str | None] = set()
    with httpx.Client(base_url=origin, timeout=60, cookies=cookies) as http:
        for _ in range(times):
            status = http.get("/oauth/status").json()
            seen.add(status["user"]["sub"] if status["authenticated"] else None)
    return seen


def test_200_concurrent_logins_and_a_worker_restart(cluster):
    """Load: 200 logins, 32 at a time, on four workers sharing one store.

    Halfway through, ``SIGHUP`` makes gunicorn replace all four workers while
    logins are in flight.  Afterwards: no failure, no login state left in the
    store (each was consumed by its callback), one session per user, each
    seen only as its own user, the early ones included.
    """
    users = [f"user{i:03d}" for i in range(USERS)]
    done: dict[str, dict[str, str]] = {}
    failures: dict[str, str] = {}
    lock = threading.Lock()
    before_restart: list[str] = []
    old_workers = cluster.workers()
    assert len(old_workers) == 4
    restarted = threading.Event()

    def one(user: str) -> None:
        try:
            cookies = _log_in(cluster.origin, user)
        except Exception as exc:  # collected: the run reports every failure at once
            with lock:
                failures[user] = f"{type(exc).__name__}: {exc}"[:300]
            return
        with lock:
            done[user] = cookies
            if len(done) == USERS // 2 and not restarted.is_set():
                before_restart.extend(done)
                cluster.process.send_signal(signal.SIGHUP)
                restarted.set()

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(one, users))

    assert not failures, f"{len(failures)} logins failed: {dict(list(failures.items())[:5])}"
    assert len(done) == USERS
    assert restarted.is_set() and len(before_restart) == USERS // 2
    # Every worker was replaced.
    _wait_until(lambda: not (cluster.workers() & old_workers), 30, "the new workers")
    assert len(cluster.workers()) == 4

    # Each login state was taken by its callback: none is left behind.
    assert list(cluster.store.scan("state:")) == []
    assert list(cluster.store.scan("formpost:")) == []
    assert len(list(cluster.store.scan("session:"))) == USERS

    # No session crossed: each is its own user, before and after the restart.
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        answers = pool.map(lambda u: _whoami(cluster.origin, done[u]), users)
        seen = dict(zip(users, answers, strict=True))
    crossed = {u: s for u, s in seen.items() if s != {u}}
    assert not crossed, f"sessions seen as someone else or lost: {dict(list(crossed.items())[:5])}"
    assert all(seen[u] == {u} for u in before_restart)
    assert "Handling signal: hup" in cluster.log.read_text()
