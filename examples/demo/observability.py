"""In-process OpenTelemetry for the demo: SDK providers and bounded in-memory sinks.

The library emits through the OpenTelemetry API only; the demo, as any
application would, installs the SDK: a tracer provider whose spans go to a
bounded in-memory buffer (read by the trace page), a logger provider for the
audit events as OTel log records, and a meter provider with an in-memory
reader.  When ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the OTLP/HTTP
exporter is installed, everything is also sent there.

Audit events reach the demo through the module's audit hook and are kept in
:class:`AuditLog`, tagged with the OpenTelemetry trace they happened in and
with the HTTP request that caused them, so the trace page can show the events
of one login next to its spans.
"""

from __future__ import annotations

import importlib
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import flask
from opentelemetry import _logs
from opentelemetry import metrics
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["AuditLog", "Observability", "RingSpanExporter", "install"]

SERVICE_NAME = "dash-oauth-otel-demo"
MAX_SPANS = 5000
MAX_EVENTS = 2000
MAX_LOG_RECORDS = 2000


class RingSpanExporter(SpanExporter):
    """Keep the most recent finished spans in memory (oldest dropped first)."""

    def __init__(self, maxlen: int = MAX_SPANS) -> None:
        self._spans: deque[ReadableSpan] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append ``spans`` to the buffer."""
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Spans are stored synchronously; nothing to flush."""
        return True

    def spans(self) -> list[ReadableSpan]:
        """A snapshot of the buffered spans, oldest first."""
        with self._lock:
            return list(self._spans)


@dataclass
class AuditLog:
    """The audit events of this process, newest last, each a plain dict.

    Besides the library's fields every stored event carries ``otel_trace_id``
    (the OpenTelemetry trace it was emitted in, 32 hex digits, if any),
    ``request_id`` (one id per HTTP request of the app) and, when the request
    had a login session, ``session_sub_digest`` (the digest of that session's
    subject, as the library computes ``sub_digest``).
    """

    maxlen: int = MAX_EVENTS
    session_subject: Callable[[], str | None] | None = None
    _events: deque[dict[str, Any]] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._events = deque(maxlen=self.maxlen)

    def __call__(self, event: dict[str, Any]) -> None:
        """The audit hook: store a copy of ``event`` with the demo's tags."""
        stored = dict(event)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            stored["otel_trace_id"] = trace.format_trace_id(context.trace_id)
        if flask.has_request_context():
            request_id: str | None = flask.g.get("demo_request_id")
            if request_id is None:
                request_id = flask.g.demo_request_id = secrets.token_hex(6)
            stored["request_id"] = request_id
            if self.session_subject is not None:
                stored["session_sub_digest"] = self.session_subject()
        with self._lock:
            self._events.append(stored)

    def events(self) -> list[dict[str, Any]]:
        """A snapshot of the stored events, oldest first."""
        with self._lock:
            return list(self._events)


@dataclass
class Observability:
    """The demo's telemetry sinks (what the trace page reads)."""

    spans: RingSpanExporter
    metrics: InMemoryMetricReader | None
    logs: InMemoryLogRecordExporter
    audit: AuditLog
    exporting_to: str | None = None
    _log_offset: int = 0

    def log_record_count(self) -> int:
        """How many OTel log records were emitted (the buffer is trimmed now and then)."""
        current = len(self.logs.get_finished_logs())
        if current > MAX_LOG_RECORDS:
            self._log_offset += current
            self.logs.clear()
            current = 0
        return self._log_offset + current

    def metrics_data(self) -> Any:
        """Collect the current metric points (``None`` without a reader)."""
        return self.metrics.get_metrics_data() if self.metrics is not None else None


def _otlp(module: str, name: str) -> Any | None:
    """The OTLP/HTTP exporter class ``name`` from ``module``, if installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


def install() -> Observability:
    """Install the SDK providers (or join those already installed) and return the sinks.

    The OpenTelemetry API accepts one global provider of each kind per
    process; when an SDK tracer or logger provider is already installed the
    demo adds its processors to it, and when a meter provider is already
    installed the demo has no metrics reader of its own.
    """
    resource = Resource.create({"service.name": SERVICE_NAME})
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    base = "opentelemetry.exporter.otlp.proto.http"
    span_otlp = _otlp(f"{base}.trace_exporter", "OTLPSpanExporter") if endpoint else None
    log_otlp = _otlp(f"{base}._log_exporter", "OTLPLogExporter") if endpoint else None
    metric_otlp = _otlp(f"{base}.metric_exporter", "OTLPMetricExporter") if endpoint else None

    spans = RingSpanExporter()
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        tracer_provider = TracerProvider(resource=resource)
        trace.set_tracer_provider(tracer_provider)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    if span_otlp is not None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(BatchSpanProcessor(span_otlp()))

    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = _logs.get_logger_provider()
    if not isinstance(logger_provider, LoggerProvider):
        logger_provider = LoggerProvider(resource=resource)
        _logs.set_logger_provider(logger_provider)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    if log_otlp is not None:
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_otlp()))

    reader: InMemoryMetricReader | None = None
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        reader = InMemoryMetricReader()
        readers: list[MetricReader] = [reader]
        if metric_otlp is not None:
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(PeriodicExportingMetricReader(metric_otlp()))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))

    exporting = endpoint if span_otlp is not None else None
    return Observability(
        spans=spans, metrics=reader, logs=logs, audit=AuditLog(), exporting_to=exporting
    )
