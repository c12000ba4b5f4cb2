"""Tests of dash_oauth_otel.telemetry.switches: environment and configure() precedence."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

import pytest

from dash_oauth_otel.telemetry import metrics
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry import switches

SIGNALS: dict[str, Callable[[], bool]] = {
    "TRACING": switches.tracing_enabled,
    "LOGS": switches.logs_enabled,
    "METRICS": switches.metrics_enabled,
}


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in SIGNALS:
        monkeypatch.delenv(f"DASH_OAUTH_OTEL_{name}", raising=False)
    switches.configure()
    yield
    switches.configure()


def test_everything_on_by_default() -> None:
    assert all(enabled() for enabled in SIGNALS.values())


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("value", ["0", "false", "no", "off", "FALSE", "Off", " no ", "\toff\n"])
def test_environment_turns_a_signal_off(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"DASH_OAUTH_OTEL_{name}", value)
    assert SIGNALS[name]() is False
    others = [enabled() for other, enabled in SIGNALS.items() if other != name]
    assert all(others)


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "", "anything"])
def test_other_environment_values_leave_it_on(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"DASH_OAUTH_OTEL_{name}", value)
    assert SIGNALS[name]() is True


def test_environment_read_on_every_call(monkeypatch) -> None:
    assert switches.tracing_enabled()
    monkeypatch.setenv("DASH_OAUTH_OTEL_TRACING", "0")
    assert not switches.tracing_enabled()
    monkeypatch.setenv("DASH_OAUTH_OTEL_TRACING", "1")
    assert switches.tracing_enabled()


def test_configure_turns_signals_off() -> None:
    switches.configure(tracing=False, logs=False, metrics=False)
    assert not any(enabled() for enabled in SIGNALS.values())


def test_configure_wins_over_environment(monkeypatch) -> None:
    monkeypatch.setenv("DASH_OAUTH_OTEL_TRACING", "off")
    monkeypatch.setenv("DASH_OAUTH_OTEL_LOGS", "on")
    switches.configure(tracing=True, logs=False)
    assert switches.tracing_enabled() is True
    assert switches.logs_enabled() is False


def test_configure_without_arguments_returns_to_environment(monkeypatch) -> None:
    monkeypatch.setenv("DASH_OAUTH_OTEL_METRICS", "off")
    switches.configure(tracing=False, metrics=True)
    switches.configure()
    assert switches.tracing_enabled() is True
    assert switches.metrics_enabled() is False


def test_none_hands_a_switch_back_to_the_environment() -> None:
    switches.configure(tracing=False, logs=False)
    switches.configure(logs=False)
    assert switches.tracing_enabled() is True
    assert switches.logs_enabled() is False


def test_configure_coerces_truthiness() -> None:
    switches.configure(tracing=0)  # type: ignore[arg-type]
    assert switches.tracing_enabled() is False


def test_tracing_off_means_no_spans(telemetry) -> None:
    switches.configure(tracing=False)
    with spans.span(spans.LOGIN_REQUEST):
        pass
    switches.configure()
    with spans.span(spans.CALLBACK):
        pass
    assert [s.name for s in telemetry.spans()] == [spans.CALLBACK]


def test_metrics_off_means_no_instruments(telemetry) -> None:
    switches.configure(metrics=False)
    assert metrics.instruments() is None
    switches.configure()
    assert metrics.instruments() is not None
