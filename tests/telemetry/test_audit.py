"""Tests of dash_oauth_otel.telemetry.audit: hook, logging and OTel log delivery."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber

from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import switches
from dash_oauth_otel.telemetry.correlation import trace_id_scope


@pytest.fixture
def switches_reset() -> Iterator[None]:
    yield
    switches.configure()


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="dash_oauth_otel.audit")
    caplog.set_level(logging.DEBUG, logger="dash_oauth_otel.telemetry")
    return caplog


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dash_oauth_otel.audit"]


def otel_records(telemetry: Any, event_type: str) -> list[Any]:
    return [r for r in telemetry.log_records() if r.event_name == event_type]


# -- the event ------------------------------------------------------------------


def test_event_shape(telemetry) -> None:
    event = audit.emit(audit.AUDIT_REDIRECT_ISSUED, provider="idp", phase="login.request")
    assert event["type"] == "audit_redirect_issued"
    assert event["provider"] == "idp"
    assert event["phase"] == "login.request"
    assert event["process_id"] == os.getpid()
    assert isinstance(event["timestamp"], float)
    assert "trace_id" in event
    assert telemetry.audit == [event]


def test_none_fields_dropped(telemetry) -> None:
    event = audit.emit("audit_x", kept="v", dropped=None, zero=0, empty="")
    assert "dropped" not in event
    assert event["zero"] == 0
    assert event["empty"] == ""
    assert "dropped" not in telemetry.audit[0]


def test_trace_id_from_correlation_scope(telemetry) -> None:
    with trace_id_scope("corr-123"):
        event = audit.emit("audit_x")
    assert event["trace_id"] == "corr-123"


def test_explicit_trace_id_wins(telemetry) -> None:
    with trace_id_scope("corr-123"):
        event = audit.emit("audit_x", trace_id="explicit-9")
    assert event["trace_id"] == "explicit-9"


# -- the hook -------------------------------------------------------------------


def test_hook_receives_each_event_as_a_new_dict(telemetry) -> None:
    first = audit.emit("audit_a", n=1)
    audit.emit("audit_b", n=2)
    assert telemetry.event_types() == ["audit_a", "audit_b"]
    telemetry.audit[0]["n"] = "changed"
    assert first["n"] == 1


def test_hook_removed(telemetry) -> None:
    audit.set_audit_hook(None)
    audit.emit("audit_x")
    assert telemetry.audit == []


def test_raising_hook_never_breaks_emit(telemetry, audit_log) -> None:
    def hook(event: dict[str, Any]) -> None:
        raise RuntimeError("hook exploded")

    audit.set_audit_hook(hook)
    event = audit.emit(audit.AUDIT_LOGIN_SUCCESS, provider="idp")
    assert event["type"] == "audit_login_success"
    warnings = [r for r in audit_log.records if r.name == "dash_oauth_otel.telemetry"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "audit_login_success" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None
    assert isinstance(warnings[0].exc_info[1], RuntimeError)
    # The other two destinations still got the event.
    assert len(audit_records(audit_log)) == 1
    assert len(otel_records(telemetry, "audit_login_success")) == 1


# -- the standard logger --------------------------------------------------------


def test_logger_gets_json_message_and_record_attribute(telemetry, audit_log) -> None:
    with trace_id_scope("corr-1"):
        event = audit.emit("audit_token_exchange", provider="idp", status="ok")
    (record,) = audit_records(audit_log)
    assert json.loads(record.getMessage()) == event
    assert record.audit == event  # type: ignore[attr-defined]
    assert record.audit is not event  # type: ignore[attr-defined]


def test_logger_message_serialises_odd_values(telemetry, audit_log) -> None:
    audit.emit("audit_x", when=object())
    (record,) = audit_records(audit_log)
    assert json.loads(record.getMessage())["when"].startswith("<object object")


@pytest.mark.parametrize(
    ("event_type", "fields", "level", "severity"),
    [
        ("audit_login_success", {}, logging.INFO, SeverityNumber.INFO),
        ("audit_token_refresh", {"status": "ok"}, logging.INFO, SeverityNumber.INFO),
        ("audit_token_refresh", {"status": "http_500"}, logging.WARNING, SeverityNumber.WARN),
        ("audit_callback_validation_failed", {}, logging.WARNING, SeverityNumber.WARN),
        ("audit_state_parse_failure", {}, logging.WARNING, SeverityNumber.WARN),
        ("audit_callback_query_rejected", {}, logging.WARNING, SeverityNumber.WARN),
        ("audit_callback_iss_mismatch", {}, logging.WARNING, SeverityNumber.WARN),
        ("audit_callback_iss_missing", {}, logging.WARNING, SeverityNumber.WARN),
        ("error", {}, logging.ERROR, SeverityNumber.ERROR),
        ("http_error", {"status": "http_400"}, logging.ERROR, SeverityNumber.ERROR),
        ("transport_error", {}, logging.ERROR, SeverityNumber.ERROR),
        ("audit_token_exchange_error", {}, logging.ERROR, SeverityNumber.ERROR),
    ],
)
def test_severity_mapping(
    telemetry, audit_log, event_type: str, fields: dict[str, Any], level: int, severity
) -> None:
    audit.emit(event_type, **fields)
    (record,) = audit_records(audit_log)
    assert record.levelno == level
    (log,) = otel_records(telemetry, event_type)
    assert log.severity_number is severity
    assert log.severity_text == severity.name


def test_logger_level_respected(telemetry, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="dash_oauth_otel.audit")
    audit.emit("audit_login_success")
    audit.emit("transport_error")
    assert [r.levelno for r in audit_records(caplog)] == [logging.ERROR]
    assert telemetry.event_types() == ["audit_login_success", "transport_error"]


# -- the OTel log record --------------------------------------------------------


def test_otel_log_record(telemetry) -> None:
    with trace_id_scope("corr-7"):
        event = audit.emit(
            audit.AUDIT_CALLBACK_RECEIVED,
            provider="idp",
            issuer="https://idp.example",
            client_id_digest="d" * 64,
            phase="callback",
            status="ok",
            module_id="login",
            reason="none",
            count=3,
        )
    (log,) = otel_records(telemetry, "audit_callback_received")
    assert log.body == "audit_callback_received"
    assert log.timestamp == int(event["timestamp"] * 1e9)
    assert dict(log.attributes) == {
        "event.type": "audit_callback_received",
        "dash_oauth_otel.trace_id": "corr-7",
        "dash.process_id": os.getpid(),
        "oauth.provider.name": "idp",
        "oauth.provider.issuer": "https://idp.example",
        "oauth.client_id_digest": "d" * 64,
        "oauth.phase": "callback",
        "oauth.status": "ok",
        "dash.module_id": "login",
        "reason": "none",
        "count": 3,
    }


def test_otel_log_drops_none_and_structured_values(telemetry) -> None:
    audit.emit("audit_x", dropped=None, nested={"a": 1}, listed=[1], paired=(1, 2), kept="v")
    (log,) = otel_records(telemetry, "audit_x")
    attrs = dict(log.attributes)
    assert attrs["kept"] == "v"
    for key in ("dropped", "nested", "listed", "paired", "timestamp", "dash_oauth_otel.trace_id"):
        assert key not in attrs


def test_logs_switched_off(telemetry, audit_log, switches_reset) -> None:
    switches.configure(logs=False)
    audit.emit("audit_login_success")
    assert otel_records(telemetry, "audit_login_success") == []
    assert telemetry.event_types() == ["audit_login_success"]
    assert len(audit_records(audit_log)) == 1


def test_logs_switched_off_by_environment(telemetry, monkeypatch) -> None:
    monkeypatch.setenv("DASH_OAUTH_OTEL_LOGS", "off")
    audit.emit("audit_login_success")
    assert otel_records(telemetry, "audit_login_success") == []
    assert telemetry.event_types() == ["audit_login_success"]
