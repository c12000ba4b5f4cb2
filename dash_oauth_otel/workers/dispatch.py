"""The main-process side of a task: parent span, sealing, waiting, and the outcome.

:class:`Dispatcher` opens the catalogued main-process parent span
(``refresh``, ``token.revoke``, ``token.introspect``; ``callback`` for
exchanges), captures the context under it, seals the input with the client's
secret, sends it to the backend and turns the sealed outcome back into a value
or the typed error raised in the worker.  Audit events emitted in the worker are
handed to the main process's audit hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dash_oauth_otel import errors
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import TransportError
from dash_oauth_otel.errors import WorkerTimeoutError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.audit import deliver_to_hook
from dash_oauth_otel.workers.backends import PendingTask
from dash_oauth_otel.workers.backends import WorkerBackend
from dash_oauth_otel.workers.context import capture
from dash_oauth_otel.workers.context import start_in_context
from dash_oauth_otel.workers.tasks import WORKER_SPANS
from dash_oauth_otel.workers.tasks import task_sealer

__all__ = ["PARENT_SPANS", "Dispatcher", "WorkerTimeoutError", "rebuild_error"]

_log = logging.getLogger("dash_oauth_otel.workers")

PARENT_SPANS = {
    "refresh": spans.REFRESH,
    "revoke": spans.TOKEN_REVOKE,
    "introspect": spans.TOKEN_INTROSPECT,
}


@dataclass
class Dispatcher:
    """Send token operations to a worker backend.

    :param backend: Where tasks run.
    :param client_path: Import path of the client in the workers (``"myapp.auth:client"``).
    :param worker_init: Import path of a telemetry set-up function run in workers.
    :param timeout: Seconds to wait for a worker's answer.
    """

    backend: WorkerBackend
    client_path: str
    worker_init: str | None = None
    timeout: float = 30.0

    def submit(self, client: OAuthClient, operation: str, inputs: dict[str, Any]) -> PendingTask:
        """Seal and send one task (call inside its parent span)."""
        payload = {"context": capture().to_json(), "inputs": inputs}
        sealed = task_sealer(client).seal(payload)
        return self.backend.submit(operation, sealed, self.client_path, self.worker_init)

    def outcome(
        self,
        client: OAuthClient,
        operation: str,
        pending: PendingTask,
        timeout: float | None = None,
        on_late: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for a task and return its result, raising the worker's typed error.

        :param on_late: Called (in a background thread) with the result of a task
            that finishes after the timeout, so that tokens nobody will use can
            be revoked.
        """
        try:
            sealed = pending.result(timeout=self.timeout if timeout is None else timeout)
        except TimeoutError:
            if not pending.cancel() and on_late is not None:
                start_in_context(self._reap, client, operation, pending, on_late, name="reaper")
            raise WorkerTimeoutError(
                f"The {operation} worker did not answer within {self.timeout:g} s.",
                phase=WORKER_SPANS[operation].removeprefix("dash_oauth_otel."),
                reason="worker_timeout",
            ) from None
        except DashOAuthError:
            raise
        except Exception as exc:
            raise TransportError(
                f"The {operation} worker failed ({type(exc).__name__}).",
                phase=WORKER_SPANS[operation].removeprefix("dash_oauth_otel."),
                reason="worker_failed",
            ) from exc
        data = task_sealer(client).unseal(sealed, max_chars=1 << 22)
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
        return cls(
            message, status=data.get("status"), oauth_error=data.get("oauth_error"), **common
        )
    if isinstance(cls, type) and issubclass(cls, errors.CallbackIssuerError):
        return cls(message, missing=data.get("error") == "issuer_missing", **common)
    if isinstance(cls, type) and issubclass(cls, errors.AuthorizationError):
        return cls(message, error=str(data.get("error")), **common)
    if isinstance(cls, type) and issubclass(cls, DashOAuthError):
        return cls(message, **common)
    return DashOAuthError(message, **common)
