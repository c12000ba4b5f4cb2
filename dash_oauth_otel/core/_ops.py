"""Small helpers shared by the operations of the core."""

from __future__ import annotations

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.telemetry.metrics import record_failure

__all__ = ["note_failure", "propagator"]

propagator = TraceContextTextMapPropagator()
"""W3C trace-context only: baggage never travels into the sealed state."""


def note_failure(exc: DashOAuthError, trace_id: str | None, phase: str) -> None:
    """Stamp ``exc`` with the operation's correlation id and phase; count it."""
    exc.trace_id = exc.trace_id or trace_id
    exc.phase = exc.phase or phase
    record_failure(exc.phase or phase, type(exc).__qualname__)
