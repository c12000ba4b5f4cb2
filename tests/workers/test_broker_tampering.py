"""Someone who can write to the broker, but has no secret, against real Celery workers.

The example app sends its token tasks to a Redis list that no worker reads
(the *inbox*); the test stands between the app and the worker, as a broker
writer can: it takes each real message from the inbox and decides what the
worker's queue receives — the message itself, a changed copy, a copy sent again
later, or nothing.  It can also write the result backend.  Whatever it does
with the sealed payloads, a swapped outcome is refused by the waiting web
process, and a changed or replayed input is refused by the worker; the genuine
tasks complete.
"""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dash_oauth_otel import introspect_token
from dash_oauth_otel.workers import CeleryBackend
from examples.basic_app import create_app
from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.workers.celery_app import make_app
from tests.workers.conftest import CLIENT_PATH
from tests.workers.conftest import WORKER_INIT
from tests.workers.flows import REDIS_HOST
from tests.workers.flows import REDIS_PORT
from tests.workers.flows import Service
from tests.workers.flows import app_celery_worker
from tests.workers.flows import forget_queue
from tests.workers.flows import start_login
from tests.workers.flows import wait_for
from tests.workers.flows import wait_for_login
from tests.workers.flows import waiting_handle

DB = 11  # the Redis database of the token-task tests
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"
REJECTED = "audit_task_rejected"


class Broker:
    """What a writer of the broker's Redis database can do with the task messages."""

    def __init__(self, inbox: str, queue: str) -> None:
        self.inbox = inbox
        self.queue = queue
        self.redis = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)

    def take(self, timeout: float = 15.0) -> dict[str, Any]:
        """The next real message the app sent (it reaches no worker unless delivered)."""
        found = self.redis.brpop([self.inbox], timeout=int(timeout))
        assert found is not None, "the app sent no task message"
        message: dict[str, Any] = json.loads(found[1])
        return message

    def deliver(self, message: dict[str, Any]) -> None:
        """Put ``message`` on the queue the worker reads."""
        self.redis.lpush(self.queue, json.dumps(message))

    def result(self, task_id: str) -> dict[str, Any] | None:
        """The result the worker stored for Celery task ``task_id``, if any."""
        raw = self.redis.get(f"celery-task-meta-{task_id}")
        return json.loads(raw) if raw else None

    def write_result(self, task_id: str, meta: dict[str, Any]) -> None:
        """Store ``meta`` as the result of ``task_id`` and announce it, as a worker does."""
        meta = {**meta, "task_id": task_id}
        key = f"celery-task-meta-{task_id}"
        self.redis.set(key, json.dumps(meta))
        self.redis.publish(key, json.dumps(meta))

    def close(self) -> None:
        self.redis.close()


def task_id(message: dict[str, Any]) -> str:
    return str(message["headers"]["id"])


def arguments(message: dict[str, Any]) -> list[Any]:
    """The task's arguments: operation, sealed payload, client path, worker_init."""
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return list(args)


def resent(message: dict[str, Any], *, operation: str | None = None) -> dict[str, Any]:
    """A copy of ``message`` under a new Celery id, its operation changed if asked."""
    out = copy.deepcopy(message)
    args, kwargs, embed = json.loads(base64.b64decode(out["body"]))
    if operation is not None:
        args[0] = operation
    new_id = str(uuid.uuid4())
    out["body"] = base64.b64encode(json.dumps([args, kwargs, embed]).encode()).decode()
    out["headers"]["id"] = new_id
    out["headers"]["root_id"] = new_id
    out["headers"]["argsrepr"] = repr(tuple(args))
    out["properties"]["correlation_id"] = new_id
    out["properties"]["delivery_tag"] = str(uuid.uuid4())
    return out


def worker_events(worker: Service) -> list[dict[str, Any]]:
    """The audit events the worker logged (one JSON object per line of its log)."""
    found = []
    for line in worker.output().splitlines():
        match = re.search(r"(\{.*\"type\": \"audit_[a-z_]+\".*\})", line)
        if match:
            try:
                found.append(json.loads(match.group(1)))
            except ValueError:
                continue
    return found


def rejections(worker: Service, reason: str) -> list[dict[str, Any]]:
    return [e for e in worker_events(worker) if e["type"] == REJECTED and e["reason"] == reason]


@contextmanager
def tampered_broker(
    idp: Any, tmp_path: Path, span_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunningApp, Service, Broker]]:
    """The example app, a Celery worker (two processes) and the broker between them."""
    suffix = uuid.uuid4().hex[:12]
    inbox, queue = f"dash-oauth-otel-inbox-{suffix}", f"dash-oauth-otel-test-{suffix}"
    backend = CeleryBackend(make_app(URL, inbox), queue=inbox)

    def factory(client: Any, **opts: Any) -> Any:
        return create_app(
            client,
            workers=backend,
            client_path=CLIENT_PATH,
            worker_init=WORKER_INIT,
            worker_timeout=30,
            **opts,
        )

    broker = Broker(inbox, queue)
    with serve_app(idp, factory=factory) as running:
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
            yield running, worker, broker
        finally:
            worker.stop()
            forget_queue(DB, queue)
            forget_queue(DB, inbox)
            for key in broker.redis.scan_iter(match=f"dash-oauth-otel-test-worker-{queue}*"):
                broker.redis.delete(key)
            broker.close()


def _deliver_login(http: httpx.Client, broker: Broker, username: str) -> tuple[str, dict[str, Any]]:
    """Sign in at the provider and deliver the response; return the handle and the exchange task."""
    handle = waiting_handle(start_login(http, "/done", username).deliver(http))
    return handle, broker.take()


def _signed_in_as(http: httpx.Client) -> str | None:
    status = http.get("/oauth/status").json()
    return status["user"]["sub"] if status["authenticated"] else None


def _signed_in(http: httpx.Client, broker: Broker, username: str) -> None:
    """A whole login whose exchange the broker passes on unchanged."""
    handle, task = _deliver_login(http, broker, username)
    broker.deliver(task)
    assert wait_for_login(http, handle) == "done"
    assert http.get(f"/oauth/callback?complete={handle}").status_code == 303
    assert _signed_in_as(http) == username


def test_an_outcome_swapped_into_another_task_is_refused(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    with (
        tampered_broker(idp, tmp_path, span_file, monkeypatch) as (running, _worker, broker),
        running.http() as bob,
        running.http() as alice,
    ):
        # Bob signs in; Alice's exchange is held back, and Bob's sealed outcome
        # is written as the result of Alice's task.
        bob_handle, bob_task = _deliver_login(bob, broker, "bob")
        broker.deliver(bob_task)
        assert wait_for_login(bob, bob_handle) == "done"
        bob_result = wait_for(lambda: broker.result(task_id(bob_task)), what="Bob's result")
        alice_handle, alice_task = _deliver_login(alice, broker, "alice")
        broker.write_result(task_id(alice_task), bob_result)

        assert wait_for_login(alice, alice_handle) == "error"
        page = alice.get(f"/oauth/callback?complete={alice_handle}")
        assert page.status_code >= 400
        assert _signed_in_as(alice) is None, "Bob's tokens signed Alice's browser in"
        refused = telemetry.events(REJECTED)
        assert [(e["reason"], e["operation"], e["phase"]) for e in refused] == [
            ("task_mismatch", "exchange", "callback.worker")
        ]
        assert refused[0]["checked_by"] == "dispatcher"
        failed = telemetry.events("audit_login_failed")
        assert [(e["reason"], e["error_class"]) for e in failed] == [
            ("task_mismatch", "TaskBindingError")
        ]
        # The task whose outcome was copied is untouched.
        assert bob.get(f"/oauth/callback?complete={bob_handle}").status_code == 303
        assert _signed_in_as(bob) == "bob"


def test_an_input_sent_as_another_operation_is_refused_and_the_genuine_task_runs(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    with (
        tampered_broker(idp, tmp_path, span_file, monkeypatch) as (running, worker, broker),
        running.http() as bob,
    ):
        module = running.module
        _signed_in(bob, broker, "bob")
        token = module.sessions.load(session_cookie(bob.cookies)).token
        # An introspection of Bob's refresh token, captured and sent as a revocation.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            probe = pool.submit(
                module.dispatcher.run,
                module.client,
                "introspect",
                {"token": token.to_dict(), "which": "refresh"},
            )
            genuine = broker.take()
            assert arguments(genuine)[0] == "introspect"
            as_revoke = resent(genuine, operation="revoke")
            broker.deliver(as_revoke)
            wait_for(lambda: broker.result(task_id(as_revoke)), what="the changed task's result")
            assert introspect_token(running.client, token, "refresh").active is True
            refused = rejections(worker, "operation_mismatch")
            assert [(e["operation"], e["requested_operation"]) for e in refused] == [
                ("introspect", "revoke")
            ]
            assert refused[0]["checked_by"] == "worker"
            assert refused[0]["phase"] == "token.introspect.worker"
            # The genuine task, delivered after its changed copy, still runs.
            broker.deliver(genuine)
            assert probe.result(timeout=40)["active"] is True
        assert not telemetry.events("audit_token_revocation")


def test_an_input_sent_again_is_refused_as_replayed_and_the_pending_login_completes(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    with (
        tampered_broker(idp, tmp_path, span_file, monkeypatch) as (running, worker, broker),
        running.http() as alice,
    ):
        module = running.module
        handle, task = _deliver_login(alice, broker, "alice")
        broker.deliver(task)
        assert wait_for_login(alice, handle) == "done"
        # The exchange sent again (twice, to reach both worker processes) before
        # the browser completes its login.
        for replay in (resent(task), resent(task)):
            broker.deliver(replay)
            wait_for(lambda r=replay: broker.result(task_id(r)), what="a replay's result")
        refused = rejections(worker, "replayed")
        assert [e["operation"] for e in refused] == ["exchange", "exchange"]
        assert all(e["phase"] == "callback.worker" for e in refused)
        assert len({e["task_id_digest"] for e in refused}) == 1
        assert len(telemetry.events("audit_token_exchange")) == 1
        landed = alice.get(f"/oauth/callback?complete={handle}")
        assert landed.status_code == 303 and landed.headers["location"] == "/done"
        assert _signed_in_as(alice) == "alice"
        token = module.sessions.load(session_cookie(alice.cookies)).token
        assert introspect_token(running.client, token, "access").active is True


def test_a_failure_written_into_the_result_backend_is_a_plain_worker_failure(
    idp, tmp_path, span_file, monkeypatch, telemetry
):
    forged = "Your account is locked: call the help desk at +1-555-0100"
    with (
        tampered_broker(idp, tmp_path, span_file, monkeypatch) as (running, _worker, broker),
        running.http() as alice,
    ):
        handle, task = _deliver_login(alice, broker, "alice")
        broker.write_result(
            task_id(task),
            {
                "status": "FAILURE",
                "result": {
                    "exc_type": "StateError",
                    "exc_message": [forged],
                    "exc_module": "dash_oauth_otel.errors",
                },
                "traceback": None,
                "children": [],
                "date_done": None,
            },
        )
        assert wait_for_login(alice, handle) == "error"
        page = alice.get(f"/oauth/callback?complete={handle}")
        assert page.status_code >= 400
        assert forged not in page.text
        failed = telemetry.events("audit_login_failed")
        assert [(e["reason"], e["error_class"]) for e in failed] == [
            ("worker_failed", "TransportError")
        ]
