"""The package's tracer and OTel logger: one per installed provider."""

from __future__ import annotations

import pytest
from opentelemetry import _logs
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from dash_oauth_otel.telemetry import _scope


def test_the_tracer_is_reused_while_the_provider_stays(telemetry) -> None:
    first = _scope.get_tracer()
    assert _scope.get_tracer() is first
    with first.start_as_current_span("probe"):
        pass
    assert telemetry.span("probe").instrumentation_scope.name == _scope.SCOPE_NAME


def test_a_new_provider_gets_its_own_tracer(monkeypatch: pytest.MonkeyPatch, telemetry) -> None:
    before = _scope.get_tracer()
    other = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: other)
    tracer = _scope.get_tracer()
    assert tracer is not before
    with tracer.start_as_current_span("probe") as span:
        assert span.is_recording()
    assert telemetry.spans("probe") == [], "the span went to the new provider, not the old one"
    monkeypatch.undo()
    assert _scope.get_tracer() is not tracer


def test_a_new_logger_provider_gets_its_own_logger(
    monkeypatch: pytest.MonkeyPatch, telemetry
) -> None:
    before = _scope.get_logger()
    assert _scope.get_logger() is before
    other = LoggerProvider()
    monkeypatch.setattr(_logs, "get_logger_provider", lambda: other)
    assert _scope.get_logger() is not before
