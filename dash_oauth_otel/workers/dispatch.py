"""The main-process side of a task: parent span, sealing, waiting, and the outcome.

:class:`Dispatcher` opens the catalogued main-process parent span
(``refresh``, ``token.revoke``, ``token.introspect``; ``callback`` for
exchanges), captures the context under it, seals the input with the client's
secret and the task's binding (a random task id, the operation, the import
paths and a validity), sends it to the backend and turns the sealed outcome
back into a value or the typed error raised in the worker.  An outcome that is
not the one of the task waited for is refused
(:class:`~dash_oauth_otel.errors.TaskBindingError`, ``audit_task_rejected``).
Audit events emitted in the worker are handed to the main process's audit hook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dash_oauth_otel import errors
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.lifecycle import REFRESH_ERROR
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import TaskBindingError
from dash_oauth_otel.errors import TransportError
from dash_oauth_otel.errors import WorkerTimeoutError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.audit import deliver_to_hook
from dash_oauth_otel.workers.backends import PendingTask
from dash_oauth_otel.workers.backends import WorkerBackend
from dash_oauth_otel.workers.binding import DEFAULT_TASK_TTL
from dash_oauth_otel.workers.binding import TaskBinding
from dash_oauth_otel.workers.binding import audit_rejection
from dash_oauth_otel.workers.binding import check_outcome
from dash_oauth_otel.workers.binding import input_sealer
from dash_oauth_otel.workers.binding import outcome_sealer
from dash_oauth_otel.workers.binding import worker_phase
from dash_oauth_otel.workers.context import capture
from dash_oauth_otel.workers.context import start_in_context

__all__ = [
    "PARENT_SPANS",
    "Dispatcher",
    "SubmittedTask",
    "WorkerTimeoutError",
    "open_outcome",
    "rebuild_error",
]

_log = logging.getLogger("dash_oauth_otel.workers")

PARENT_SPANS = {
    "refresh": spans.REFRESH,
    "revoke": spans.TOKEN_REVOKE,
    "introspect": spans.TOKEN_INTROSPECT,
}


@dataclass(frozen=True)
class SubmittedTask:
    """A task sent by :meth:`Dispatcher.submit`: the backend's handle and the task's binding.

    :meth:`Dispatcher.outcome` accepts only the outcome of this very task.
    """

    binding: TaskBinding
    pending: PendingTask

    def result(self, timeout: float | None = None) -> str:
        """Wait for the sealed outcome (see :meth:`PendingTask.result`)."""
        return self.pending.result(timeout=timeout)

    def cancel(self) -> bool:
        """Try to cancel the task before it starts."""
        return self.pending.cancel()


def open_outcome(client: OAuthClient, sealed: str, expected: TaskBinding) -> dict[str, Any]:
    """Open a sealed outcome and refuse it unless it is ``expected``'s.

    :raises TaskBindingError: ``unsealable``, ``task_mismatch`` or
        ``operation_mismatch``, after emitting ``audit_task_rejected``.
    """
    try:
        data = outcome_sealer(client).unseal(sealed, max_chars=1 << 22)
        check_outcome(data.get("task"), expected)
    except StateError as exc:
        refused = (
            exc
            if isinstance(exc, TaskBindingError)
            else TaskBindingError(
                f"The answer to a {expected.operation} task does not open as one; it was refused.",
                reason="unsealable",
                phase=worker_phase(expected.operation),
            )
        )
        audit_rejection(
            client,
            refused,
            operation=expected.operation,
            checked_by="dispatcher",
            task_id=expected.task_id,
        )
        raise refused from None
    return data


@dataclass
class Dispatcher:
    """Send token operations to a worker backend.

    :param backend: Where tasks run.
    :param client_path: Import path of the client in the workers (``"myapp.auth:client"``).
    :param worker_init: Import path of a telemetry set-up function run in workers.
    :param timeout: Seconds to wait for a worker's answer.
    :param task_ttl: Seconds a task's input stays valid: a worker refuses it
        later (it should exceed the longest queue wait, and ``timeout``).
    """

    backend: WorkerBackend
    client_path: str
    worker_init: str | None = None
    timeout: float = 30.0
    task_ttl: float = DEFAULT_TASK_TTL

    def submit(self, client: OAuthClient, operation: str, inputs: dict[str, Any]) -> SubmittedTask:
        """Seal and send one task (call inside its parent span)."""
        binding = TaskBinding.new(
            operation, self.client_path, self.worker_init, now=time.time(), ttl=self.task_ttl
        )
        payload = {"task": binding.to_json(), "context": capture().to_json(), "inputs": inputs}
        sealed = input_sealer(client).seal(payload)
        pending = self.backend.submit(operation, sealed, self.client_path, self.worker_init)
        return SubmittedTask(binding, pending)

    def outcome(
        self,
        client: OAuthClient,
        operation: str,
        pending: PendingTask,
        timeout: float | None = None,
        on_late: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for a task and return its result, raising the worker's typed error.

        :param pending: The task :meth:`submit` returned for ``operation``.
        :param on_late: Called (in a background thread) with the result of a task
            that finishes after the timeout, so that tokens nobody will use can
            be revoked.
        :raises TaskBindingError: The answer is not this task's.
        """
        if not isinstance(pending, SubmittedTask) or pending.binding.operation != operation:
            raise ConfigError(
                f"Dispatcher.outcome() takes the task Dispatcher.submit() returned for {operation}."
            )
        try:
            sealed = pending.result(timeout=self.timeout if timeout is None else timeout)
        except TimeoutError:
            if not pending.cancel() and on_late is not None:
                start_in_context(self._reap, client, operation, pending, on_late, name="reaper")
            raise WorkerTimeoutError(
                f"The {operation} worker did not answer within {self.timeout:g} s.",
                phase=worker_phase(operation),
                reason="worker_timeout",
            ) from None
        except DashOAuthError:
            raise
        except Exception as exc:
            raise TransportError(
                f"The {operation} worker failed ({type(exc).__name__}).",
                phase=worker_phase(operation),
                reason="worker_failed",
            ) from exc
        data = open_outcome(client, sealed, pending.binding)
        for event in data.get("events", []):
            deliver_to_hook(event)
        if "error" in data:
            raise rebuild_error(data["error"])
        result: dict[str, Any] = data["result"]
        return result

    def _reap(
        self,
        client: OAuthClient,
        operation: str,
        pending: PendingTask,
        on_late: Callable[[dict[str, Any]], None],
    ) -> None:
        try:
            result = self.outcome(client, operation, pending, timeout=self.timeout * 10)
        except DashOAuthError:
            return  # failed late, or never answered: nothing was issued to revoke
        try:
            on_late(result)
        except Exception:
            _log.warning("could not discard a late %s result", operation, exc_info=True)

    def run(
        self,
        client: OAuthClient,
        operation: str,
        inputs: dict[str, Any],
        on_late: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Run one operation in a worker under its main-process parent span; wait for it."""
        attributes: dict[str, str | bool] = {
            **client.telemetry_attributes(),
            attr.OAUTH_ASYNC: True,
            attr.OAUTH_PHASE: PARENT_SPANS[operation].removeprefix("dash_oauth_otel."),
        }
        if "which" in inputs:
            attributes[attr.OAUTH_TOKEN_WHICH] = inputs["which"]
        with spans.span(PARENT_SPANS[operation], attributes):
            pending = self.submit(client, operation, inputs)
            return self.outcome(client, operation, pending, on_late=on_late)


def rebuild_error(data: dict[str, Any]) -> DashOAuthError:
    """Turn an error raised in a worker (as JSON) back into its typed exception."""
    cls = getattr(errors, str(data.get("type")), None)
    message = str(data.get("message") or "The worker failed.")
    common = {
        "phase": data.get("phase"),
        "trace_id": data.get("trace_id"),
        "reason": data.get("reason"),
    }
    if isinstance(cls, type) and issubclass(cls, errors.HTTPError):
        rebuilt = cls(
            message, status=data.get("status"), oauth_error=data.get("oauth_error"), **common
        )
        if isinstance(rebuilt, errors.TokenEndpointError) and data.get("error") == REFRESH_ERROR:
            rebuilt.error = REFRESH_ERROR  # a refused refresh keeps its own wire code
        return rebuilt
    if isinstance(cls, type) and issubclass(cls, errors.CallbackIssuerError):
        return cls(message, missing=data.get("error") == "issuer_missing", **common)
    if isinstance(cls, type) and issubclass(cls, errors.AuthorizationError):
        return cls(message, error=str(data.get("error")), **common)
    if isinstance(cls, type) and issubclass(cls, DashOAuthError):
        return cls(message, **common)
    return DashOAuthError(message, **common)
