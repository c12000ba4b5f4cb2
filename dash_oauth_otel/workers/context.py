"""What a task carries from the main process into a worker, and how it is replayed.

Captured on the main process when a task is sent (inside its parent span):

* the W3C ``traceparent``/``tracestate`` of the parent span;
* the ``OTEL_*`` environment as it is at that moment (exporter settings
  included; variables unset on the main process are unset in the worker);
* the signal switches, the audit digest key, the correlation ``trace_id`` and
  the ``dash.*`` metadata of the request (module, session digest, main pid).

SDK set-up done in Python code cannot travel: the worker calls a named set-up
function (``worker_init="myapp.telemetry:setup"``) before its first task and
again whenever the replayed ``OTEL_*`` environment changes.
"""

from __future__ import annotations

import contextvars
import importlib
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import switches
from dash_oauth_otel.telemetry.correlation import context_attributes
from dash_oauth_otel.telemetry.correlation import current_trace_id
from dash_oauth_otel.telemetry.correlation import set_context_attributes
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.redact import get_digest_key
from dash_oauth_otel.telemetry.settings import TelemetrySettings
from dash_oauth_otel.telemetry.settings import use_settings

__all__ = [
    "ALWAYS_CAPTURED",
    "TaskContext",
    "capture",
    "identity_scope",
    "load_object",
    "replay",
    "start_in_context",
]

ALWAYS_CAPTURED = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "DASH_OAUTH_OTEL_TRACING",
    "DASH_OAUTH_OTEL_LOGS",
    "DASH_OAUTH_OTEL_METRICS",
)
"""Variables always part of the snapshot (``None`` when unset on the main process)."""

_propagator = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TaskContext:
    """The replayable context of one task (travels sealed, never in clear)."""

    carrier: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str | None] = field(default_factory=dict)
    switches: dict[str, bool] = field(default_factory=dict)
    digest_key: str = ""
    trace_id: str | None = None
    attributes: dict[str, str | int] = field(default_factory=dict)
    submitted_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON form sealed into the task payload."""
        return {
            "carrier": self.carrier,
            "environment": self.environment,
            "switches": self.switches,
            "digest_key": self.digest_key,
            "trace_id": self.trace_id,
            "attributes": self.attributes,
            "submitted_at": self.submitted_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskContext:
        """Rebuild from :meth:`to_json` output."""
        return cls(
            carrier=dict(data.get("carrier") or {}),
            environment=dict(data.get("environment") or {}),
            switches=dict(data.get("switches") or {}),
            digest_key=str(data.get("digest_key") or ""),
            trace_id=data.get("trace_id"),
            attributes=dict(data.get("attributes") or {}),
            submitted_at=float(data.get("submitted_at") or 0.0),
        )


def capture() -> TaskContext:
    """Capture the current context (call inside the task's main-process parent span)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    environment: dict[str, str | None] = {name: os.environ.get(name) for name in ALWAYS_CAPTURED}
    environment.update({k: v for k, v in os.environ.items() if k.startswith("OTEL_")})
    attributes = context_attributes()
    attributes.pop(attr.DASH_PROCESS_ID, None)
    attributes[attr.DASH_MAIN_PROCESS_ID] = os.getpid()
    return TaskContext(
        carrier=carrier,
        environment=environment,
        switches={
            "tracing": switches.tracing_enabled(),
            "logs": switches.logs_enabled(),
            "metrics": switches.metrics_enabled(),
        },
        digest_key=get_digest_key().hex(),
        trace_id=current_trace_id(),
        attributes=attributes,
        submitted_at=time.time(),
    )


def load_object(path: str, *, what: str) -> Any:
    """Import ``"package.module:attribute"`` (the client or the set-up function)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what} must look like 'package.module:name', got {path!r}.")
    try:
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {path!r} cannot be imported: {exc}.") from exc
    return found


_init_lock = threading.Lock()
_initialised: dict[str, tuple[tuple[str, str | None], ...]] = {}


def _apply_environment(environment: dict[str, str | None]) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_") and n not in environment]:
        del os.environ[name]  # extras unset: the worker sees the main process's set
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _run_init(worker_init: str | None, environment: dict[str, str | None]) -> None:
    if not worker_init:
        return
    snapshot = tuple(sorted(environment.items()))
    with _init_lock:
        if _initialised.get(worker_init) == snapshot:
            return
        setup: Callable[[], object] = load_object(worker_init, what="worker_init")
        setup()
        _initialised[worker_init] = snapshot


@contextmanager
def identity_scope(context: TaskContext) -> Iterator[list[dict[str, Any]]]:
    """Make ``context``'s switches, digest key, correlation id and metadata current.

    Audit events emitted inside are collected in the yielded list (and returned
    to the main process, which hands them to its own audit hook).  Nothing of
    the environment is applied and no set-up function runs: a worker refusing a
    task uses this alone.
    """
    collected: list[dict[str, Any]] = []
    settings = TelemetrySettings(
        tracing=context.switches.get("tracing"),
        logs=context.switches.get("logs"),
        metrics=context.switches.get("metrics"),
        audit_hook=collected.append,
        digest_key=bytes.fromhex(context.digest_key) if context.digest_key else None,
    )
    set_context_attributes({**context.attributes, attr.DASH_PROCESS_ID: os.getpid()})
    try:
        with use_settings(settings), trace_id_scope(context.trace_id):
            yield collected
    finally:
        set_context_attributes(None)


@contextmanager
def replay(
    context: TaskContext, *, worker_init: str | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Replay ``context`` in a worker for one task; yield the list collecting its audit events.

    Applies the captured ``OTEL_*`` environment, runs ``worker_init`` when
    needed, attaches the parent's trace context and enters
    :func:`identity_scope`.
    """
    _apply_environment(context.environment)
    _run_init(worker_init, context.environment)
    token = otel_context.attach(_propagator.extract(context.carrier))
    try:
        with identity_scope(context) as collected:
            yield collected
    finally:
        otel_context.detach(token)


def start_in_context(target: Callable[..., object], *args: object, name: str) -> threading.Thread:
    """Run ``target`` in a daemon thread that carries the caller's context.

    The trace context, the correlation id and the ``dash.*`` metadata follow the
    work into the thread, so its spans stay in the caller's trace.
    """
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target, *args), name=f"dash-oauth-{name}", daemon=True
    )
    thread.start()
    return thread
