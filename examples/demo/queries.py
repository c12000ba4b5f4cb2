"""What the trace page shows, computed from the in-memory spans, events and metrics.

Pure functions (no Dash, no Flask): a user's operations (logins and token
refreshes) from the audit events, the spans of one operation as rows of a
waterfall, the audit events of that operation, and metric summaries.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans as catalog

__all__ = [
    "GAP_MS",
    "Operation",
    "SpanRow",
    "busy_stretches",
    "counter_totals",
    "event_details",
    "histogram_buckets",
    "histogram_stats",
    "operation_events",
    "operation_spans",
    "user_operations",
]

PREFIX = "dash_oauth_otel."
GAP_MS = 250.0
"""Idle stretches longer than this (no span open) split an operation into busy stretches."""
# Attributes worth a line in the hover box (never tokens: spans carry none).
_HOVER_PREFIXES = ("oauth.", "http.", "server.", "error.")
# Audit fields every event has; the table shows the rest.
_COMMON_FIELDS = frozenset(
    {
        "type",
        "trace_id",
        "timestamp",
        "process_id",
        "provider",
        "issuer",
        "client_id_digest",
        "otel_trace_id",
        "request_id",
        "session_sub_digest",
        "module_id",
        "main_process_id",
    }
)


@dataclass(frozen=True)
class Operation:
    """One login or token refresh of a user, found through the audit events.

    A session keeps its login's correlation id, so the refreshes of a session
    share it with the login; a refresh is told apart by the OpenTelemetry
    trace it ran in.

    :param kind: ``"login"`` or ``"refresh"``.
    :param correlation_id: The package correlation id (``dash_oauth_otel.trace_id``).
    :param at: When it completed (seconds since the epoch).
    :param otel_trace_id: The OpenTelemetry trace its completing event was
        emitted in (32 hex digits), if any.
    """

    kind: str
    correlation_id: str
    at: float
    otel_trace_id: str | None = None

    @property
    def key(self) -> str:
        """What names this operation in the page's chooser."""
        if self.kind == "refresh" and self.otel_trace_id:
            return f"refresh:{self.otel_trace_id}"
        return self.correlation_id

    @property
    def label(self) -> str:
        """A human label such as ``Login · 14:02:07``."""
        return f"{self.kind.capitalize()} · {time.strftime('%H:%M:%S', time.localtime(self.at))}"


@dataclass(frozen=True)
class SpanRow:
    """One span as a waterfall row (times in ms since the operation's first span)."""

    name: str
    span_id: str
    trace_id: str
    parent_name: str | None
    depth: int
    start_ms: float
    duration_ms: float
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def end_ms(self) -> float:
        """Offset of the span's end."""
        return self.start_ms + self.duration_ms

    @property
    def short_name(self) -> str:
        """The span name without the package prefix, with its phase when that tells it apart."""
        short = self.name.removeprefix(PREFIX)
        phase = str(self.attributes.get(attr.OAUTH_PHASE, ""))
        if self.name == catalog.CALLBACK_VALIDATE and phase:
            stage = phase.removeprefix("callback.").removesuffix("_validation")
            short = f"validate · {stage}"
        return short


def busy_stretches(rows: Sequence[SpanRow], gap_ms: float = GAP_MS) -> list[tuple[float, float]]:
    """Stretches of time (ms) in which some span is open, split at idle gaps over ``gap_ms``."""
    stretches: list[tuple[float, float]] = []
    for row in sorted(rows, key=lambda r: r.start_ms):
        if stretches and row.start_ms - stretches[-1][1] <= gap_ms:
            start, end = stretches[-1]
            stretches[-1] = (start, max(end, row.end_ms))
        else:
            stretches.append((row.start_ms, row.end_ms))
    return stretches


def user_operations(events: Iterable[Mapping[str, Any]], sub_digest: str) -> list[Operation]:
    """The logins and refreshes of the user with ``sub_digest``, newest first."""
    found: dict[str, Operation] = {}
    for event in events:
        correlation = event.get("trace_id")
        if not isinstance(correlation, str):
            continue
        kind: str | None = None
        if event["type"] == audit.AUDIT_LOGIN_SUCCESS and event.get("sub_digest") == sub_digest:
            kind = "login"
        elif (
            event["type"] == audit.AUDIT_TOKEN_REFRESH
            and event.get("session_sub_digest") == sub_digest
        ):
            kind = "refresh"
        if kind is not None:
            otel = event.get("otel_trace_id")
            operation = Operation(
                kind,
                correlation,
                float(event["timestamp"]),
                otel if isinstance(otel, str) else None,
            )
            found[operation.key] = operation
    return sorted(found.values(), key=lambda op: op.at, reverse=True)


_LOGIN_SPANS = frozenset(
    {catalog.LOGIN_REQUEST, catalog.CALLBACK, catalog.FORM_POST, catalog.CALLBACK_WORKER}
)


def operation_traces(spans: Iterable[ReadableSpan], operation: Operation) -> set[int]:
    """The OpenTelemetry traces of ``operation``.

    A refresh: the trace it ran in.  A login: the traces of its correlation id
    that hold a login step (its refreshes share the id, not the steps).
    """
    if operation.kind == "refresh" and operation.otel_trace_id:
        return {int(operation.otel_trace_id, 16)}
    return {
        s.context.trace_id
        for s in spans
        if s.context is not None
        and s.name in _LOGIN_SPANS
        and (s.attributes or {}).get(attr.TRACE_ID) == operation.correlation_id
    }


def _status(span: ReadableSpan) -> str:
    code = span.status.status_code
    return "ERROR" if code is StatusCode.ERROR else "OK" if code is StatusCode.OK else "UNSET"


def operation_spans(spans: Sequence[ReadableSpan], operation: Operation) -> list[SpanRow]:
    """Every span of the OpenTelemetry trace(s) of an operation, in tree order.

    The traces (:func:`operation_traces`) are taken whole, so children
    without the correlation id are included too.
    """
    trace_ids = operation_traces(spans, operation)
    chosen = [
        s
        for s in spans
        if s.context is not None and s.context.trace_id in trace_ids and s.start_time is not None
    ]
    if not chosen:
        return []
    by_id = {s.context.span_id: s for s in chosen if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for s in chosen:
        parent = s.parent.span_id if s.parent is not None else None
        children[parent if parent in by_id else None].append(s)
    origin = min(s.start_time or 0 for s in chosen)
    rows: list[SpanRow] = []

    def visit(span: ReadableSpan, depth: int) -> None:
        start = span.start_time or origin
        end = span.end_time or start
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        assert span.context is not None  # noqa: S101 - filtered above
        rows.append(
            SpanRow(
                name=span.name,
                span_id=trace.format_span_id(span.context.span_id),
                trace_id=trace.format_trace_id(span.context.trace_id),
                parent_name=parent.name if parent is not None else None,
                depth=depth,
                start_ms=(start - origin) / 1e6,
                duration_ms=(end - start) / 1e6,
                status=_status(span),
                attributes={
                    k: v
                    for k, v in (span.attributes or {}).items()
                    if k.startswith(_HOVER_PREFIXES)
                },
            )
        )
        for child in sorted(
            children.get(span.context.span_id, []), key=lambda c: c.start_time or 0
        ):
            visit(child, depth + 1)

    for root in sorted(children[None], key=lambda s: s.start_time or 0):
        visit(root, 0)
    return rows


def operation_events(
    events: Iterable[Mapping[str, Any]], correlation_id: str, trace_ids: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The audit events of an operation, oldest first.

    An event belongs to it when it was emitted in one of its OpenTelemetry
    traces, or outside any trace with its correlation id, or in an HTTP request
    that emitted such an event (``audit_session_started`` follows the login in
    the same callback request).
    """
    listed = list(events)
    traces = set(trace_ids)

    def direct(event: Mapping[str, Any]) -> bool:
        otel = event.get("otel_trace_id")
        return otel in traces if otel else event.get("trace_id") == correlation_id

    requests = {e["request_id"] for e in listed if direct(e) and e.get("request_id")}
    return [dict(e) for e in listed if direct(e) or e.get("request_id") in requests]


def event_details(event: Mapping[str, Any]) -> str:
    """The event's own fields as ``key=value`` pairs; digests shortened."""
    parts: list[str] = []
    for key, value in event.items():
        if key in _COMMON_FIELDS or value is None:
            continue
        if key.endswith("_digest") and isinstance(value, str):
            value = value[:8] + "…"
        elif key.endswith("expires_at") and isinstance(value, (int, float)):
            value = time.strftime("%H:%M:%S", time.localtime(value))
        parts.append(f"{key}={value}")
    return "  ".join(parts)


def _metrics(data: Any, name: str) -> list[Any]:
    points: list[Any] = []
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points.extend(metric.data.data_points)
    return points


def counter_totals(data: Any, name: str, key: str) -> dict[str, float]:
    """The sum of counter ``name`` by the value of attribute ``key``."""
    totals: dict[str, float] = defaultdict(float)
    for point in _metrics(data, name):
        totals[str(dict(point.attributes or {}).get(key, "?"))] += point.value
    return dict(totals)


def histogram_buckets(data: Any, name: str, key: str) -> tuple[list[float], dict[str, list[int]]]:
    """Bucket bounds (the histogram's unit) and bucket counts of ``name`` by attribute ``key``."""
    bounds: list[float] = []
    counts: dict[str, list[int]] = {}
    for point in _metrics(data, name):
        bounds = list(point.explicit_bounds)
        label = str(dict(point.attributes or {}).get(key, "?"))
        previous = counts.get(label, [0] * len(point.bucket_counts))
        counts[label] = [a + b for a, b in zip(previous, point.bucket_counts, strict=False)]
    return bounds, counts


def histogram_stats(data: Any, name: str, key: str) -> dict[str, tuple[int, float, float]]:
    """Count, mean and maximum of histogram ``name`` by attribute ``key`` (its unit)."""
    totals: dict[str, tuple[int, float, float]] = {}
    for point in _metrics(data, name):
        label = str(dict(point.attributes or {}).get(key, "?"))
        count, total, largest = totals.get(label, (0, 0.0, 0.0))
        totals[label] = (count + point.count, total + point.sum, max(largest, point.max))
    return {k: (c, t / c if c else 0.0, m) for k, (c, t, m) in totals.items()}
