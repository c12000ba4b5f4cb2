"""What binds a task's sealed input and outcome to that one task.

Sealing alone keeps a task's payload secret and unforgeable, but a copy of a
sealed payload is as good as the original: someone who can write to the
broker could run a captured input again, run it as another operation, or give
one task's outcome to the caller of another.  So every task carries a
:class:`TaskBinding`, sealed into its input:

* a random task id (128 bits, URL-safe);
* the operation (``exchange``, ``refresh``, ``revoke``, ``introspect``);
* the client path and ``worker_init`` the worker is asked to use;
* its issue time and the end of its validity.

The worker refuses an input whose operation or paths are not the ones the
message asks for (:func:`check_input`), one whose validity has passed, and
one it has already run (:func:`claim_run`: an atomic ``add`` of the task id in
the worker client's store, shared by every worker process and host that shares
the store, kept until the input expires anyway).  The outcome echoes the task id
and the operation, and the web process refuses an outcome that is not the one of
the task it waits for (:func:`check_outcome`).  Inputs and outcomes are sealed
for different purposes, so neither can stand for the other.

Each refusal is a :class:`~dash_oauth_otel.errors.TaskBindingError` and an
``audit_task_rejected`` event (:func:`audit_rejection`).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any
from typing import Final

from dash_oauth_otel._types import Store
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import TaskBindingError
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.redact import digest

__all__ = [
    "CLOCK_LEEWAY",
    "DEFAULT_TASK_TTL",
    "TASK_ID_BYTES",
    "WORKER_SPANS",
    "TaskBinding",
    "audit_rejection",
    "check_input",
    "check_outcome",
    "claim_run",
    "input_sealer",
    "outcome_sealer",
    "run_key",
    "worker_phase",
]

TASK_ID_BYTES: Final = 16
"""Random bytes of a task id (128 bits)."""

DEFAULT_TASK_TTL: Final = 300.0
"""Seconds a task input stays valid after it was sent."""

CLOCK_LEEWAY: Final = 60.0
"""Seconds a worker remembers a task id beyond the input's validity (clock skew)."""

WORKER_SPANS: Final = {
    "exchange": spans.CALLBACK_WORKER,
    "refresh": spans.REFRESH_WORKER,
    "revoke": spans.TOKEN_REVOKE_WORKER,
    "introspect": spans.TOKEN_INTROSPECT_WORKER,
}
"""The catalogued bridge span of each operation."""


def worker_phase(operation: str) -> str:
    """The phase of ``operation``'s worker step (``refresh.worker``, ...)."""
    span = WORKER_SPANS.get(operation)
    return span.removeprefix("dash_oauth_otel.") if span else "worker"


def input_sealer(client: OAuthClient) -> Sealer:
    """The sealer of task inputs (keyed by the client's state key, bound to its issuer and id)."""
    assert client.state_key is not None  # noqa: S101 - always set by OAuthClient
    return Sealer(client.state_key, "task-input", context=client.record_context)


def outcome_sealer(client: OAuthClient) -> Sealer:
    """The sealer of task outcomes: another purpose than inputs, so neither opens as the other."""
    assert client.state_key is not None  # noqa: S101 - always set by OAuthClient
    return Sealer(client.state_key, "task-outcome", context=client.record_context)


@dataclass(frozen=True)
class TaskBinding:
    """The identity of one task, sealed into its input and echoed in its outcome.

    :param task_id: Random, URL-safe, :data:`TASK_ID_BYTES` bytes of entropy.
    :param operation: The operation the task was sent to run.
    :param client_path: The import path of the client the worker must use.
    :param worker_init: The telemetry set-up the worker must call, if any.
    :param issued_at: When the task was sent (seconds since the epoch).
    :param expires_at: After this instant a worker refuses the input.
    """

    task_id: str
    operation: str
    client_path: str
    worker_init: str | None
    issued_at: float
    expires_at: float

    @classmethod
    def new(
        cls,
        operation: str,
        client_path: str,
        worker_init: str | None,
        *,
        now: float,
        ttl: float = DEFAULT_TASK_TTL,
    ) -> TaskBinding:
        """A binding with a fresh random task id, valid ``ttl`` seconds from ``now``."""
        if operation not in WORKER_SPANS:
            raise ConfigError(f"Unknown worker operation {operation!r}.")
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ConfigError("The validity of a task must be a positive number of seconds.")
        return cls(
            task_id=secrets.token_urlsafe(TASK_ID_BYTES),
            operation=operation,
            client_path=client_path,
            worker_init=worker_init,
            issued_at=now,
            expires_at=now + ttl,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form sealed into the input."""
        return {
            "id": self.task_id,
            "operation": self.operation,
            "client_path": self.client_path,
            "worker_init": self.worker_init,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: object) -> TaskBinding:
        """Rebuild from :meth:`to_json` output.

        :raises TaskBindingError: ``unsealable``, when ``data`` is no binding.
        """
        if not isinstance(data, dict):
            raise _unbound()
        try:
            worker_init = data["worker_init"]
            binding = cls(
                task_id=str(data["id"]),
                operation=str(data["operation"]),
                client_path=str(data["client_path"]),
                worker_init=None if worker_init is None else str(worker_init),
                issued_at=float(data["issued_at"]),
                expires_at=float(data["expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise _unbound() from None
        return binding

    def echo(self) -> dict[str, str]:
        """What the outcome carries back: the task id and the operation."""
        return {"id": self.task_id, "operation": self.operation}


def _unbound() -> TaskBindingError:
    return TaskBindingError(
        "The task input carries no task binding.", reason="unsealable", phase="worker"
    )


def check_input(
    binding: TaskBinding,
    *,
    operation: str,
    client_path: str,
    worker_init: str | None,
    now: float,
) -> None:
    """Refuse an input the message asks to run otherwise than it was sent.

    :param operation: The operation the broker message names.
    :param client_path: The client path the broker message names.
    :param worker_init: The ``worker_init`` the broker message names.
    :param now: The worker's clock.
    :raises TaskBindingError: ``operation_mismatch``, ``paths_mismatch`` or ``expired``.
    """
    phase = worker_phase(binding.operation)
    if operation != binding.operation:
        raise TaskBindingError(
            f"A {binding.operation} task was sent to run as {operation!r}; it was refused.",
            reason="operation_mismatch",
            phase=phase,
        )
    if client_path != binding.client_path or worker_init != binding.worker_init:
        raise TaskBindingError(
            f"A {binding.operation} task names other import paths than it was sent with.",
            reason="paths_mismatch",
            phase=phase,
        )
    if now > binding.expires_at:
        raise TaskBindingError(
            f"A {binding.operation} task arrived after its validity; it was refused.",
            reason="expired",
            phase=phase,
        )


def run_key(task_id: str) -> str:
    """The store key recording that a task ran: a hash of its id."""
    return "task-run:" + hashlib.sha256(task_id.encode()).hexdigest()


def claim_run(store: Store, binding: TaskBinding, *, now: float) -> None:
    """Record that ``binding``'s task runs now; refuse it if it already ran.

    The record is an atomic ``add`` in ``store``: among every process sharing
    the store (every worker of a host with ``DiskcacheStore``, of every host
    with ``RedisStore``) exactly one runs a task.  It is kept until the input
    has expired (plus :data:`CLOCK_LEEWAY`), after which :func:`check_input`
    refuses the input by itself.

    :raises TaskBindingError: ``replayed``.
    :raises StoreError: When the store fails (the task does not run).
    """
    ttl = max(binding.expires_at - now, 0.0) + CLOCK_LEEWAY
    if not store.add(run_key(binding.task_id), b"1", ttl):
        raise TaskBindingError(
            f"This {binding.operation} task has already run; the copy was refused.",
            reason="replayed",
            phase=worker_phase(binding.operation),
        )


def check_outcome(echoed: object, expected: TaskBinding) -> None:
    """Refuse an outcome that is not the one of the task ``expected`` describes.

    :param echoed: The ``task`` entry of the opened outcome.
    :raises TaskBindingError: ``task_mismatch`` or ``operation_mismatch``.
    """
    phase = worker_phase(expected.operation)
    found = echoed if isinstance(echoed, dict) else {}
    if not secrets.compare_digest(str(found.get("id", "")), expected.task_id):
        raise TaskBindingError(
            f"The answer to a {expected.operation} task belongs to another task; it was refused.",
            reason="task_mismatch",
            phase=phase,
        )
    if found.get("operation") != expected.operation:
        raise TaskBindingError(
            f"The answer to a {expected.operation} task is another operation's; it was refused.",
            reason="operation_mismatch",
            phase=phase,
        )


def audit_rejection(
    client: OAuthClient,
    error: TaskBindingError,
    *,
    operation: str,
    checked_by: str,
    task_id: str | None = None,
    requested_operation: str | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """Emit ``audit_task_rejected`` for ``error``; return the event.

    :param operation: The task's operation (sealed in it, when it could be read).
    :param checked_by: ``worker`` or ``dispatcher`` (the web process).
    :param requested_operation: The operation the message asked for, when it differs.
    """
    return audit.emit(
        audit.AUDIT_TASK_REJECTED,
        **client.audit_fields(),
        trace_id=trace_id,
        operation=operation,
        requested_operation=requested_operation if requested_operation != operation else None,
        reason=error.reason,
        phase=error.phase,
        checked_by=checked_by,
        task_id_digest=digest(task_id) if task_id else None,
        error_class=type(error).__qualname__,
    )
