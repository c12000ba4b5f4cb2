"""The task a worker runs: rebuild the client, replay the context, do one token operation.

:func:`run_task` is the single entry point every backend executes.  Its input
and output are sealed with the client's own secret (AES-256-GCM, purpose
``task``): codes, tokens and the digest key never cross a broker, a pipe or a
pickle in clear, and the client — with its secret — is rebuilt in the worker
from an import path, never sent.
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
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.metrics import instruments
from dash_oauth_otel.workers.context import TaskContext
from dash_oauth_otel.workers.context import load_object
from dash_oauth_otel.workers.context import replay

__all__ = [
    "OPERATIONS",
    "WORKER_SPANS",
    "error_json",
    "load_client",
    "run_task",
    "task_sealer",
]

_log = logging.getLogger("dash_oauth_otel.workers")

WORKER_SPANS: Final = {
    "exchange": spans.CALLBACK_WORKER,
    "refresh": spans.REFRESH_WORKER,
    "revoke": spans.TOKEN_REVOKE_WORKER,
    "introspect": spans.TOKEN_INTROSPECT_WORKER,
}
"""The catalogued bridge span of each operation."""

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


def task_sealer(client: OAuthClient) -> Sealer:
    """The sealer of task payloads and results (keyed by the client's state key)."""
    assert client.state_key is not None  # noqa: S101 - always set by OAuthClient
    return Sealer(client.state_key, "task", context=client.record_context)


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
    """Run one token operation in this (worker) process; return the sealed outcome.

    :param operation: ``exchange``, ``refresh``, ``revoke`` or ``introspect``.
    :param sealed: The sealed ``{"context": ..., "inputs": ...}`` payload.
    :param client_path: Import path of the :class:`OAuthClient`.
    :param worker_init: Import path of a telemetry set-up function, if any.
    """
    client = load_client(client_path)
    sealer = task_sealer(client)
    payload = sealer.unseal(sealed, max_chars=1 << 20)
    context = TaskContext.from_json(payload["context"])
    started = time.time()
    outcome: dict[str, Any] = {"worker_pid": os.getpid()}
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
    return sealer.seal(outcome)
