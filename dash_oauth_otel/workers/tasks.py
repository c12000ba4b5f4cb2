"""The task a worker runs: rebuild the client, check the task, replay the context, run it.

:func:`run_task` (the process pool) and :func:`run_broker_task` (Celery) are
the entry points the backends execute.  Input and outcome are sealed with the
client's own secret (AES-256-GCM, purposes ``task-input`` and
``task-outcome``): codes, tokens and the digest key never cross a broker, a
pipe or a pickle in clear, and the client — with its secret — is rebuilt in the
worker from an import path, never sent.  Before anything runs, the worker
checks the task's sealed binding (:mod:`dash_oauth_otel.workers.binding`): the
operation and paths the message names, the input's validity, and that no
worker ran the task before.  A refused task replays nothing, calls no
``worker_init`` and reaches no provider.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from typing import Final

from opentelemetry import _logs
from opentelemetry import metrics
from opentelemetry import trace

from dash_oauth_otel.core.callback import record_login_success
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.exchange import exchange_code
from dash_oauth_otel.core.lifecycle import introspect_token
from dash_oauth_otel.core.lifecycle import refresh_token
from dash_oauth_otel.core.lifecycle import revoke_token
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import TaskBindingError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.metrics import instruments
from dash_oauth_otel.workers.binding import WORKER_SPANS
from dash_oauth_otel.workers.binding import TaskBinding
from dash_oauth_otel.workers.binding import audit_rejection
from dash_oauth_otel.workers.binding import check_input
from dash_oauth_otel.workers.binding import claim_run
from dash_oauth_otel.workers.binding import input_sealer
from dash_oauth_otel.workers.binding import outcome_sealer
from dash_oauth_otel.workers.binding import worker_phase
from dash_oauth_otel.workers.context import TaskContext
from dash_oauth_otel.workers.context import identity_scope
from dash_oauth_otel.workers.context import load_object
from dash_oauth_otel.workers.context import replay

__all__ = [
    "OPERATIONS",
    "WORKER_SPANS",
    "error_json",
    "load_client",
    "run_broker_task",
    "run_task",
]

_log = logging.getLogger("dash_oauth_otel.workers")

_clients: dict[str, OAuthClient] = {}
_clients_lock = threading.Lock()


def load_client(path: str) -> OAuthClient:
    """The client named by ``path`` (``"myapp.auth:client"``), imported once per process."""
    with _clients_lock:
        found = _clients.get(path)
        if found is None:
            found = load_object(path, what="client_path")
            if callable(found) and not isinstance(found, OAuthClient):
                found = found()
            if not isinstance(found, OAuthClient):
                raise ConfigError(f"client_path {path!r} does not name an OAuthClient.")
            _clients[path] = found
        return found


def _exchange(client: OAuthClient, inputs: dict[str, Any]) -> dict[str, Any]:
    values = OneTimeValues(inputs["verifier"], inputs.get("nonce"), inputs["binding"])
    token = exchange_code(client, inputs["code"], values, inputs.get("max_age"))
    record_login_success(client, token, float(inputs["issued_at"]))
    return {"token": token.to_dict()}


def _refresh(client: OAuthClient, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"token": refresh_token(client, OAuthToken.from_dict(inputs["token"])).to_dict()}


def _revoke(client: OAuthClient, inputs: dict[str, Any]) -> dict[str, Any]:
    result = revoke_token(client, OAuthToken.from_dict(inputs["token"]), inputs["which"])
    return {"supported": result.supported, "revoked": result.revoked, "status": result.status}


def _introspect(client: OAuthClient, inputs: dict[str, Any]) -> dict[str, Any]:
    result = introspect_token(client, OAuthToken.from_dict(inputs["token"]), inputs["which"])
    return {
        "supported": result.supported,
        "active": result.active,
        "status": result.status,
        "claims": dict(result.claims),
    }


OPERATIONS: Final[dict[str, Callable[[OAuthClient, dict[str, Any]], dict[str, Any]]]] = {
    "exchange": _exchange,
    "refresh": _refresh,
    "revoke": _revoke,
    "introspect": _introspect,
}


def error_json(exc: DashOAuthError) -> dict[str, Any]:
    """The JSON form of a typed error, rebuilt on the main process."""
    return {
        "type": type(exc).__qualname__,
        "message": exc.message,
        "error": exc.error,
        "phase": exc.phase,
        "reason": exc.reason,
        "trace_id": exc.trace_id,
        "status": getattr(exc, "status", None),
        "oauth_error": getattr(exc, "oauth_error", None),
    }


def _flush() -> None:
    # A worker may be stopped right after its result is read: export now.
    for provider in (
        trace.get_tracer_provider(),
        _logs.get_logger_provider(),
        metrics.get_meter_provider(),
    ):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            try:
                flush()
            except Exception:  # pragma: no cover - telemetry never breaks a task
                _log.warning("could not flush telemetry", exc_info=True)


def run_task(operation: str, sealed: str, client_path: str, worker_init: str | None = None) -> str:
    """Run one token operation in a process-pool worker; return the sealed outcome.

    The task's id is recorded in the worker client's ``state_store`` when it has
    one; a pool's pipe is written by its web process only, so a pool worker
    whose client has no store still refuses a changed or expired input.

    :param operation: ``exchange``, ``refresh``, ``revoke`` or ``introspect``.
    :param sealed: The sealed ``{"task": ..., "context": ..., "inputs": ...}`` input.
    :param client_path: Import path of the :class:`OAuthClient`.
    :param worker_init: Import path of a telemetry set-up function, if any.
    """
    return _execute(operation, sealed, client_path, worker_init, store_required=False)


def run_broker_task(
    operation: str, sealed: str, client_path: str, worker_init: str | None = None
) -> str:
    """Run one token operation received from a broker (Celery); return the sealed outcome.

    As :func:`run_task`, except that the worker's client must have a
    ``state_store`` shared by every worker (``RedisStore``, or ``DiskcacheStore``
    on one host): whoever can write to the broker can send a task twice, and
    only a shared record of the tasks run stops the second copy.
    """
    return _execute(operation, sealed, client_path, worker_init, store_required=True)


def _open_input(client: OAuthClient, operation: str, sealed: str) -> dict[str, Any]:
    try:
        payload = input_sealer(client).unseal(sealed, max_chars=1 << 20)
        payload["task"] = TaskBinding.from_json(payload.get("task"))
    except StateError as exc:
        refused = (
            exc
            if isinstance(exc, TaskBindingError)
            else TaskBindingError(
                "The task input does not open as one; it was refused.",
                reason="unsealable",
                phase="worker",
            )
        )
        audit_rejection(client, refused, operation=operation, checked_by="worker")
        raise refused from None
    return payload


def _claim(client: OAuthClient, binding: TaskBinding, now: float, *, required: bool) -> None:
    if client.state_store is not None:
        claim_run(client.state_store, binding, now=now)
    elif required:
        raise ConfigError(
            "The worker's client has no state_store: a worker fed by a broker needs a store "
            "shared by every worker (RedisStore) to refuse tasks sent twice.",
            phase=worker_phase(binding.operation),
        )


def _execute(
    operation: str,
    sealed: str,
    client_path: str,
    worker_init: str | None,
    *,
    store_required: bool,
) -> str:
    client = load_client(client_path)
    payload = _open_input(client, operation, sealed)
    binding: TaskBinding = payload["task"]
    context = TaskContext.from_json(payload["context"])
    started = time.time()
    outcome: dict[str, Any] = {"task": binding.echo(), "worker_pid": os.getpid()}
    try:
        check_input(
            binding,
            operation=operation,
            client_path=client_path,
            worker_init=worker_init,
            now=started,
        )
        _claim(client, binding, started, required=store_required)
    except DashOAuthError as exc:
        # Refused before anything runs: no environment, no worker_init, no span.
        with identity_scope(context) as events:
            if isinstance(exc, TaskBindingError):
                audit_rejection(
                    client,
                    exc,
                    operation=binding.operation,
                    checked_by="worker",
                    task_id=binding.task_id,
                    requested_operation=operation,
                )
        outcome.update(error=error_json(exc), events=events)
        return outcome_sealer(client).seal(outcome)
    with replay(context, worker_init=worker_init) as events:
        wait = max(0.0, started - context.submitted_at) if context.submitted_at else None
        found = instruments()
        if found is not None and wait is not None:
            found.worker_queue_wait.record(wait, {"oauth.operation": operation})
        attributes: dict[str, str | bool] = {
            **client.telemetry_attributes(),
            attr.OAUTH_ASYNC: True,
            attr.OAUTH_PHASE: WORKER_SPANS[operation].removeprefix("dash_oauth_otel."),
        }
        if "which" in payload["inputs"]:
            attributes[attr.OAUTH_TOKEN_WHICH] = payload["inputs"]["which"]
        try:
            with spans.span(WORKER_SPANS[operation], attributes):
                outcome["result"] = OPERATIONS[operation](client, payload["inputs"])
        except DashOAuthError as exc:
            outcome["error"] = error_json(exc)
        finally:
            outcome["events"] = list(events)
            _flush()
    return outcome_sealer(client).seal(outcome)
