"""A task's sealed input and outcome are bound to that task: the checks, in this process.

The worker side is :func:`~dash_oauth_otel.workers.tasks.run_task` (what a
process-pool worker runs) called directly; the web-process side is the
:class:`~dash_oauth_otel.workers.Dispatcher` with a backend that hands over
whatever sealed answer the test chooses.  No provider is called: the token
operations are replaced by recorders.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import OAuthProvider
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import TaskBindingError
from dash_oauth_otel.workers import Dispatcher
from dash_oauth_otel.workers import tasks
from dash_oauth_otel.workers.binding import TaskBinding
from dash_oauth_otel.workers.binding import check_input
from dash_oauth_otel.workers.binding import check_outcome
from dash_oauth_otel.workers.binding import claim_run
from dash_oauth_otel.workers.dispatch import rebuild_error
from dash_oauth_otel.workers.tasks import error_json
from dash_oauth_otel.workers.tasks import run_broker_task
from dash_oauth_otel.workers.tasks import run_task

BASE = "https://idp.example"
PATH = "tests.workers.test_task_binding:client"
STORELESS_PATH = "tests.workers.test_task_binding:storeless_client"
INIT_PATH = "tests.workers.test_task_binding:worker_init"
PROBE = {"token": {"access_token": "not-a-token"}, "which": "access"}

_provider = OAuthProvider(
    name="idp",
    authorization_endpoint=f"{BASE}/authorize",
    token_endpoint=f"{BASE}/token",
    issuer=BASE,
    jwks_uri=f"{BASE}/jwks",
)


def _make(store: MemoryStore | None) -> OAuthClient:
    return OAuthClient(
        provider=_provider,
        client_id="app",
        redirect_uri="https://app.example/oauth/callback",
        client_secret="client-secret",
        state_key="a task-binding test key of at least 32 bytes",
        state_store=store,
    )


client = _make(MemoryStore())
"""The client the in-process "worker" rebuilds (shares its store with the tests)."""

storeless_client = _make(None)
init_calls: list[str] = []


def worker_init() -> None:
    init_calls.append("called")


class HandOver:
    """A backend that keeps each sealed input and answers with :attr:`answer`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, str | None]] = []
        self.answer = ""

    def submit(self, operation: str, sealed: str, client_path: str, worker_init: str | None):
        self.sent.append((operation, sealed, client_path, worker_init))
        return self

    def result(self, timeout: float | None = None) -> str:
        return self.answer

    def cancel(self) -> bool:
        return False

    def shutdown(self) -> None:
        pass


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The token operations the worker ran (recorded instead of calling a provider)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in tasks.OPERATIONS:

        def record(_client: Any, inputs: dict[str, Any], name: str = name) -> dict[str, Any]:
            calls.append((name, inputs))
            return {"operation": name}

        monkeypatch.setitem(tasks.OPERATIONS, name, record)
    init_calls.clear()
    return calls


def _dispatcher(**options: Any) -> tuple[Dispatcher, HandOver]:
    backend = HandOver()
    return Dispatcher(backend, PATH, **options), backend


def _rejected(telemetry: Any) -> list[tuple[str, str, str | None]]:
    return [
        (e["reason"], e["checked_by"], e.get("requested_operation"))
        for e in telemetry.events("audit_task_rejected")
    ]


def test_an_input_sealed_for_one_operation_is_refused_as_another(ran, telemetry):
    dispatcher, backend = _dispatcher()
    task = dispatcher.submit(client, "introspect", PROBE)
    _, sealed, path, init = backend.sent[0]
    backend.answer = run_task("revoke", sealed, path, init)
    assert ran == []
    with pytest.raises(TaskBindingError) as refused:
        dispatcher.outcome(client, "introspect", task)
    assert refused.value.reason == "operation_mismatch"
    assert refused.value.phase == "token.introspect.worker"
    assert refused.value.error == "task_rejected"
    assert _rejected(telemetry) == [("operation_mismatch", "worker", "revoke")]
    event = telemetry.events("audit_task_rejected")[0]
    assert event["operation"] == "introspect" and event["task_id_digest"]
    # The input is not spent: run as what it was sent for, it runs.
    backend.answer = run_task("introspect", sealed, path, init)
    assert dispatcher.outcome(client, "introspect", task) == {"operation": "introspect"}
    assert [name for name, _ in ran] == ["introspect"]


def test_an_input_naming_other_import_paths_is_refused_before_worker_init_runs(ran, telemetry):
    dispatcher, backend = _dispatcher()
    task = dispatcher.submit(client, "refresh", {"token": PROBE["token"]})
    _, sealed, path, _ = backend.sent[0]
    backend.answer = run_task("refresh", sealed, path, INIT_PATH)
    with pytest.raises(TaskBindingError) as refused:
        dispatcher.outcome(client, "refresh", task)
    assert refused.value.reason == "paths_mismatch"
    assert ran == [] and init_calls == []


def test_an_input_run_twice_is_refused_as_replayed(ran, telemetry):
    dispatcher, backend = _dispatcher()
    task = dispatcher.submit(client, "revoke", {**PROBE, "which": "refresh"})
    _, sealed, path, init = backend.sent[0]
    backend.answer = run_task("revoke", sealed, path, init)
    assert dispatcher.outcome(client, "revoke", task) == {"operation": "revoke"}
    backend.answer = run_task("revoke", sealed, path, init)
    with pytest.raises(TaskBindingError) as refused:
        dispatcher.outcome(client, "revoke", task)
    assert refused.value.reason == "replayed"
    assert [name for name, _ in ran] == ["revoke"]
    assert _rejected(telemetry) == [("replayed", "worker", None)]


def test_an_input_past_its_validity_is_refused_as_expired(ran, telemetry):
    dispatcher, backend = _dispatcher(task_ttl=0.05)
    task = dispatcher.submit(client, "introspect", PROBE)
    _, sealed, path, init = backend.sent[0]
    time.sleep(0.1)
    backend.answer = run_task("introspect", sealed, path, init)
    with pytest.raises(TaskBindingError) as refused:
        dispatcher.outcome(client, "introspect", task)
    assert refused.value.reason == "expired"
    assert ran == []


def test_the_outcome_of_task_a_is_refused_by_the_waiter_of_task_b(ran, telemetry):
    dispatcher, backend = _dispatcher()
    task_a = dispatcher.submit(client, "refresh", {"token": PROBE["token"]})
    task_b = dispatcher.submit(client, "refresh", {"token": PROBE["token"]})
    outcome_a = run_task("refresh", backend.sent[0][1], PATH)
    outcome_b = run_task("refresh", backend.sent[1][1], PATH)
    backend.answer = outcome_a
    with pytest.raises(TaskBindingError) as refused:
        dispatcher.outcome(client, "refresh", task_b)
    assert refused.value.reason == "task_mismatch"
    assert refused.value.phase == "refresh.worker"
    assert _rejected(telemetry) == [("task_mismatch", "dispatcher", None)]
    # The events of the refused outcome are not delivered; B's own outcome is accepted.
    assert telemetry.event_types() == ["audit_task_rejected"]
    backend.answer = outcome_b
    assert dispatcher.outcome(client, "refresh", task_b) == {"operation": "refresh"}
    backend.answer = outcome_a
    assert dispatcher.outcome(client, "refresh", task_a) == {"operation": "refresh"}


def test_an_input_and_an_outcome_never_stand_for_each_other(ran, telemetry):
    dispatcher, backend = _dispatcher()
    task = dispatcher.submit(client, "introspect", PROBE)
    sealed_input = backend.sent[0][1]
    backend.answer = sealed_input  # the input handed back as the answer
    with pytest.raises(TaskBindingError) as refused:
        dispatcher.outcome(client, "introspect", task)
    assert refused.value.reason == "unsealable"
    outcome = run_task("introspect", sealed_input, PATH)
    with pytest.raises(TaskBindingError) as as_input:
        run_task("introspect", outcome, PATH)  # the outcome sent as an input
    assert as_input.value.reason == "unsealable"
    assert [name for name, _ in ran] == ["introspect"]
    assert [e["reason"] for e in telemetry.events("audit_task_rejected")] == [
        "unsealable",
        "unsealable",
    ]


def test_a_broker_worker_needs_a_store_a_pool_worker_does_not(ran, telemetry):
    dispatcher, backend = _dispatcher()
    dispatcher.client_path = STORELESS_PATH
    task = dispatcher.submit(storeless_client, "introspect", PROBE)
    _, sealed, path, init = backend.sent[0]
    backend.answer = run_broker_task("introspect", sealed, path, init)
    with pytest.raises(ConfigError, match="state_store"):
        dispatcher.outcome(storeless_client, "introspect", task)
    assert ran == []
    backend.answer = run_task("introspect", sealed, path, init)
    assert dispatcher.outcome(storeless_client, "introspect", task) == {"operation": "introspect"}


def test_outcome_takes_only_the_task_submit_returned(ran):
    dispatcher, backend = _dispatcher()
    task = dispatcher.submit(client, "introspect", PROBE)
    with pytest.raises(ConfigError):
        dispatcher.outcome(client, "introspect", backend)
    with pytest.raises(ConfigError):
        dispatcher.outcome(client, "revoke", task)


# -- the pure checks ---------------------------------------------------------------------


def _binding(**overrides: Any) -> TaskBinding:
    fresh = TaskBinding.new("refresh", PATH, None, now=1000.0, ttl=300.0)
    return TaskBinding(**{**fresh.__dict__, **overrides})


def test_task_ids_are_random_and_url_safe():
    ids = {TaskBinding.new("refresh", PATH, None, now=0.0).task_id for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) >= 22 and i.replace("-", "").replace("_", "").isalnum() for i in ids)


def test_check_input_accepts_only_the_operation_and_paths_sealed_within_validity():
    binding = _binding()
    check_input(binding, operation="refresh", client_path=PATH, worker_init=None, now=1300.0)
    cases = {
        "operation_mismatch": {"operation": "revoke"},
        "paths_mismatch": {"client_path": "evil.module:client"},
        "expired": {"now": 1300.5},
    }
    for reason, change in cases.items():
        arguments = {
            "operation": "refresh",
            "client_path": PATH,
            "worker_init": None,
            "now": 1000.0,
            **change,
        }
        with pytest.raises(TaskBindingError) as refused:
            check_input(binding, **arguments)
        assert refused.value.reason == reason, reason
    with pytest.raises(TaskBindingError) as refused:
        check_input(binding, operation="refresh", client_path=PATH, worker_init=INIT_PATH, now=0)
    assert refused.value.reason == "paths_mismatch"


def test_claim_run_admits_a_task_once_and_remembers_it_past_its_validity():
    store = MemoryStore()
    binding = _binding()
    claim_run(store, binding, now=1000.0)
    with pytest.raises(TaskBindingError) as refused:
        claim_run(store, binding, now=1000.0)
    assert refused.value.reason == "replayed"
    claim_run(store, _binding(task_id="another"), now=1000.0)


def test_check_outcome_wants_the_task_id_and_the_operation():
    binding = _binding()
    check_outcome(binding.echo(), binding)
    for echoed, reason in [
        ({"id": "other", "operation": "refresh"}, "task_mismatch"),
        ({"id": binding.task_id, "operation": "revoke"}, "operation_mismatch"),
        (None, "task_mismatch"),
    ]:
        with pytest.raises(TaskBindingError) as refused:
            check_outcome(echoed, binding)
        assert refused.value.reason == reason


def test_a_refusal_travels_back_as_a_typed_error_with_its_reason():
    assert issubclass(TaskBindingError, StateError)
    sent = TaskBindingError("refused", reason="replayed", phase="refresh.worker", trace_id="t")
    rebuilt = rebuild_error(error_json(sent))
    assert type(rebuilt) is TaskBindingError
    assert (rebuilt.reason, rebuilt.phase, rebuilt.trace_id) == ("replayed", "refresh.worker", "t")
