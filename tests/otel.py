"""Telemetry capture for tests: one SDK installed globally for the run, cleared per test.

The library uses the OpenTelemetry API only and reads the global providers, so
the tests install SDK providers once (the API allows one global per process)
and clear the in-memory exporters around each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest
from opentelemetry import _logs
from opentelemetry import metrics
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dash_oauth_otel.telemetry import set_audit_hook

_spans = InMemorySpanExporter()
_logs_exporter = InMemoryLogRecordExporter()
_metrics = InMemoryMetricReader()
_installed = False


def install() -> None:
    """Install the SDK providers once per process."""
    global _installed
    if _installed:
        return
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_spans))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(_logs_exporter))
    _logs.set_logger_provider(logger_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_metrics]))
    _installed = True


@dataclass
class Telemetry:
    """What the code under test emitted during one test."""

    audit: list[dict[str, Any]] = field(default_factory=list)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, optionally only those called ``name``."""
        found = list(_spans.get_finished_spans())
        return [s for s in found if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The single finished span called ``name``."""
        found = self.spans(name)
        assert len(found) == 1, (
            f"expected one {name}, got {len(found)}: {[s.name for s in self.spans()]}"
        )
        return found[0]

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Audit events, optionally of one type."""
        return [e for e in self.audit if event_type is None or e["type"] == event_type]

    def event_types(self) -> list[str]:
        """The types of the audit events, in order."""
        return [e["type"] for e in self.audit]

    def log_records(self) -> list[Any]:
        """The OTel log records emitted."""
        return [r.log_record for r in _logs_exporter.get_finished_logs()]

    def metric_points(self, name: str) -> list[Any]:
        """Data points of the metric ``name`` collected so far."""
        data = _metrics.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    def exported_text(self) -> str:
        """Everything exported as one string (for secret scans)."""
        parts: list[str] = [repr(e) for e in self.audit]
        for s in self.spans():
            parts.append(s.name)
            parts.append(repr(dict(s.attributes or {})))
            parts.extend(repr(dict(ev.attributes or {})) for ev in s.events)
            parts.append(repr(s.status.description))
        for r in self.log_records():
            parts.append(repr(r.body))
            parts.append(repr(dict(r.attributes or {})))
        return "\n".join(parts)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Capture spans, audit events, OTel logs and metrics of one test."""
    install()
    _spans.clear()
    _logs_exporter.clear()
    captured = Telemetry()
    set_audit_hook(captured.audit.append)
    try:
        yield captured
    finally:
        set_audit_hook(None)
        _spans.clear()
        _logs_exporter.clear()
