"""Helpers shared by the worker tests: async logins over HTTP, subprocesses, Redis scans.

* :func:`async_login` drives a login whose code exchange runs in a worker: the
  provider's pages, the "signing you in" page, the status polling and the
  completion request, as a browser would;
* :class:`Service` starts a command (a Celery worker, gunicorn, an example)
  in its own process group, waits until it says it is ready and stops it;
* :class:`RedisMonitor` records every command the Redis server receives
  (``MONITOR``) so a test can look for secrets in what crossed the broker,
  Celery's message bodies decoded; :func:`redis_dump` reads every key of a
  database.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.adapter.conftest import SECRET
from tests.adapter.conftest import RunningApp
from tests.idp.harness import LoginResult
from tests.idp.harness import login

ROOT = Path(__file__).resolve().parents[2]
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``predicate`` every 0.1 s until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s: {what or predicate}"
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def waiting_handle(page: httpx.Response) -> str:
    """The login handle of a "signing you in" page."""
    assert page.status_code == 200 and "Signing you in" in page.text, page.text[:500]
    return page.text.split("?complete=")[1].split('"')[0].split("'")[0]


def wait_for_login(http: httpx.Client, handle: str, *, timeout: float = 30.0) -> str:
    """Poll ``oauth/status?login=<handle>`` as the waiting page does; return the final state."""
    return str(
        wait_for(
            lambda: (
                state
                if (state := http.get(f"/oauth/status?login={handle}").json()["login"]) != "pending"
                else None
            ),
            timeout=timeout,
            what="the worker's answer to a login",
        )
    )


def start_login(
    http: httpx.Client, next_path: str = "/done", username: str = "alice"
) -> LoginResult:
    """Open ``oauth/login`` and sign in at the provider; the response is not delivered yet."""
    start = http.get(f"/oauth/login?next={next_path}")
    assert start.status_code == 302, start.text[:500]
    return login(start.headers["location"], http_client=http, username=username)


def async_login(
    http: httpx.Client, next_path: str = "/done", username: str = "alice"
) -> tuple[httpx.Response, LoginResult]:
    """A whole async login; return the completion response and the provider's response."""
    result = start_login(http, next_path, username)
    handle = waiting_handle(result.deliver(http))
    wait_for_login(http, handle)
    return http.get(f"/oauth/callback?complete={handle}"), result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (none if it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess of the tests: no inherited OTel settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DASH_OAUTH_OTEL_", "PYTHONPATH"))
    }
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


class Service:
    """A command run in its own process group, its output in a log file."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        log: Path,
        ready: Callable[[str], bool],
        timeout: float = 40.0,
    ) -> None:
        self.args = args
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not ready(self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{args[:4]} did not start:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def output(self) -> str:
        """Everything the command printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the command and whatever it started (its process group)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers of this group only
        self._out.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def celery_worker(
    target: str,
    *,
    queue: str,
    env: dict[str, str],
    log: Path,
    pool: str = "solo",
    concurrency: int = 1,
) -> Service:
    """A Celery worker for ``target`` (``module:app``) consuming ``queue`` only."""
    args = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        target,
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    return Service(args, env=env, log=log, ready=lambda out: " ready." in out)


def app_celery_worker(
    running: RunningApp,
    *,
    issuer: str,
    broker_url: str,
    queue: str,
    span_file: Path,
    log: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Service:
    """A two-process Celery worker of ``tests.workers.celery_app`` for the app's client.

    The ``TEST_*`` settings that rebuild the client go to the worker and, for
    what the web process itself reads from them, into this process's environment.
    """
    env = {
        "TEST_ISSUER": issuer,
        "TEST_CLIENT_ID": running.client.client_id,
        "TEST_CLIENT_SECRET": running.client.client_secret or "",
        "TEST_REDIRECT_URI": running.client.redirect_uri,
        "TEST_SECRET": SECRET,
        "TEST_SPAN_FILE": str(span_file),
        "TEST_CELERY_URL": broker_url,
        "TEST_CELERY_QUEUE": queue,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return celery_worker(
        "tests.workers.celery_app:app",
        queue=queue,
        env=subprocess_env(**env),
        log=log,
        pool="prefork",
        concurrency=2,
    )


class RedisMonitor:
    """Every command the Redis server receives while it runs (``redis-cli monitor``)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "monitor"],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "OK" in log.read_text(errors="replace"), timeout=10, what="MONITOR")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._out.close()

    def text(self) -> str:
        """The raw MONITOR lines recorded so far."""
        return self.log.read_text(errors="replace")


_BODY = re.compile(r'body\\?"\s*:\s*\\?"([A-Za-z0-9+/=]{16,})\\?"')


def decoded_bodies(text: str) -> list[str]:
    """Celery (kombu) message bodies found in ``text``, base64-decoded."""
    found = []
    for match in _BODY.finditer(text):
        try:
            found.append(base64.b64decode(match.group(1), validate=True).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return found


def redis_dump(db: int) -> str:
    """Every key and value of database ``db`` as text (strings, lists, hashes, sets)."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    parts: list[str] = []
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key).decode()
            values: Iterable[Any]
            if kind == "string":
                values = [client.get(key)]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [v for pair in client.hgetall(key).items() for v in pair]
            elif kind == "set":
                values = client.smembers(key)
            elif kind == "zset":
                values = client.zrange(key, 0, -1)
            else:
                values = []
            parts.append(key.decode("utf-8", "replace"))
            parts.extend(
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
            )
    finally:
        client.close()
    text = "\n".join(parts)
    return text + "\n" + "\n".join(decoded_bodies(text))


def forget_queue(db: int, queue: str) -> None:
    """Delete what Celery keeps in Redis for ``queue`` (the list and its bindings)."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        keys = [queue, *client.scan_iter(match=f"_kombu.binding*{queue}")]
        client.delete(*keys)
    finally:
        client.close()


def assert_absent(secrets_seen: Iterable[str | None], **texts: str) -> None:
    """None of the secrets occurs in any of ``texts`` (each named in the failure)."""
    present = {s for s in secrets_seen if s}
    assert present, "no secrets collected to scan for"
    for where, text in texts.items():
        leaked = [s[:10] + "…" for s in present if s in text]
        assert not leaked, f"{where} contains {len(leaked)} secret(s): {leaked}"
