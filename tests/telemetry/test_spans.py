"""Tests of dash_oauth_otel.telemetry.spans: the span helper and error recording."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode

from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import TransportError
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry import switches
from dash_oauth_otel.telemetry.correlation import trace_id_scope

NAME = spans.LOGIN_REQUEST


@pytest.fixture
def switches_reset() -> Iterator[None]:
    yield
    switches.configure()


def attributes(found) -> dict:
    return dict(found.attributes or {})


# -- success --------------------------------------------------------------------


def test_success_sets_ok(telemetry) -> None:
    with spans.span(NAME, {"oauth.phase": "login.request"}) as current:
        assert current.is_recording()
        assert trace.get_current_span() is current
    found = telemetry.span(NAME)
    assert found.status.status_code is StatusCode.OK
    assert found.kind is SpanKind.INTERNAL
    assert attributes(found)["oauth.phase"] == "login.request"
    assert found.events == ()


def test_none_attributes_dropped(telemetry) -> None:
    with spans.span(NAME, {"kept": "v", "dropped": None, "zero": 0, "flag": False}):
        pass
    attrs = attributes(telemetry.span(NAME))
    assert attrs == {"kept": "v", "zero": 0, "flag": False, "dash.process_id": os.getpid()}


def test_kind(telemetry) -> None:
    with spans.span(spans.TOKEN_EXCHANGE_HTTP, kind=SpanKind.CLIENT):
        pass
    assert telemetry.span(spans.TOKEN_EXCHANGE_HTTP).kind is SpanKind.CLIENT


def test_explicit_status_kept(telemetry) -> None:
    with spans.span(NAME) as current:
        current.set_status(Status(StatusCode.ERROR, "HTTP 500"))
    found = telemetry.span(NAME)
    assert found.status.status_code is StatusCode.ERROR
    assert found.status.description == "HTTP 500"


# -- correlation ----------------------------------------------------------------


def test_correlation_attribute_added(telemetry) -> None:
    with trace_id_scope("corr-42"), spans.span(NAME):
        pass
    assert attributes(telemetry.span(NAME))["dash_oauth_otel.trace_id"] == "corr-42"


def test_no_correlation_attribute_outside_a_scope(telemetry) -> None:
    with spans.span(NAME):
        pass
    assert "dash_oauth_otel.trace_id" not in attributes(telemetry.span(NAME))


def test_explicit_correlation_attribute_not_overridden(telemetry) -> None:
    with trace_id_scope("corr-42"), spans.span(NAME, {"dash_oauth_otel.trace_id": "mine"}):
        pass
    assert attributes(telemetry.span(NAME))["dash_oauth_otel.trace_id"] == "mine"


# -- parenting ------------------------------------------------------------------


def test_nested_span_is_a_child(telemetry) -> None:
    with spans.span(spans.CALLBACK), spans.span(spans.CALLBACK_VALIDATE):
        pass
    outer, inner = telemetry.span(spans.CALLBACK), telemetry.span(spans.CALLBACK_VALIDATE)
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id


def test_root_ignores_the_current_span(telemetry) -> None:
    with spans.span(spans.CALLBACK), spans.span(NAME, root=True) as inner:
        assert trace.get_current_span() is inner
    outer, root = telemetry.span(spans.CALLBACK), telemetry.span(NAME)
    assert root.parent is None
    assert root.context.trace_id != outer.context.trace_id


def test_explicit_parent_context(telemetry) -> None:
    with spans.span(spans.LOGIN_REQUEST) as login:
        carried = trace.set_span_in_context(login)
    with spans.span(spans.CALLBACK), spans.span(spans.TOKEN_EXCHANGE, parent=carried):
        pass
    exchange = telemetry.span(spans.TOKEN_EXCHANGE)
    assert exchange.parent is not None
    assert exchange.parent.span_id == telemetry.span(spans.LOGIN_REQUEST).context.span_id


def test_current_span_restored_after_block(telemetry) -> None:
    before = trace.get_current_span()
    with pytest.raises(ValueError), spans.span(NAME):
        raise ValueError("x")
    assert trace.get_current_span() is before


# -- failures -------------------------------------------------------------------


def test_foreign_exception_recorded_without_message(telemetry) -> None:
    with pytest.raises(ValueError, match="token=secret-value"), spans.span(NAME):
        raise ValueError("token=secret-value")
    found = telemetry.span(NAME)
    assert found.status.status_code is StatusCode.ERROR
    assert found.status.description == "ValueError"
    assert attributes(found)["error.type"] == "ValueError"
    (event,) = found.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {
        "exception.type": "ValueError",
        "exception.message": "ValueError raised",
        "dash_oauth_otel.error.reason": "unexpected_error",
    }
    assert "secret-value" not in telemetry.exported_text()


def test_foreign_exception_type_is_qualified_name(telemetry) -> None:
    class Outer:
        class Inner(Exception):
            pass

    with pytest.raises(Outer.Inner), spans.span(NAME):
        raise Outer.Inner("hidden")
    found = telemetry.span(NAME)
    qualname = Outer.Inner.__qualname__
    assert attributes(found)["error.type"] == qualname
    assert "hidden" not in telemetry.exported_text()


def test_package_exception_recorded_with_its_message(telemetry) -> None:
    error = StateError("The state has expired.", reason="expired", phase="callback.state_payload")
    with pytest.raises(StateError), spans.span(NAME):
        raise error
    found = telemetry.span(NAME)
    assert found.status.status_code is StatusCode.ERROR
    assert found.status.description == "invalid_state"
    assert attributes(found)["error.type"] == "StateError"
    (event,) = found.events
    assert dict(event.attributes or {}) == {
        "exception.type": "StateError",
        "exception.message": "The state has expired.",
        "dash_oauth_otel.error.reason": "expired",
    }


def test_package_exception_without_reason(telemetry) -> None:
    with pytest.raises(TransportError), spans.span(NAME):
        raise TransportError("The token endpoint could not be reached.")
    (event,) = telemetry.span(NAME).events
    # Without a finer reason, the error's wire code.
    assert dict(event.attributes or {})["dash_oauth_otel.error.reason"] == "transport_error"


def test_base_exception_recorded_and_propagated(telemetry) -> None:
    with pytest.raises(KeyboardInterrupt), spans.span(NAME):
        raise KeyboardInterrupt
    found = telemetry.span(NAME)
    assert found.status.status_code is StatusCode.ERROR
    assert attributes(found)["error.type"] == "KeyboardInterrupt"
    assert found.end_time is not None


def test_record_error_on_a_non_recording_span_is_a_no_op() -> None:
    spans.record_error(trace.INVALID_SPAN, ValueError("x"))


# -- set_attributes -------------------------------------------------------------


def test_set_attributes_drops_none(telemetry) -> None:
    with spans.span(NAME) as current:
        spans.set_attributes(current, {"a": 1, "b": None})
    attrs = attributes(telemetry.span(NAME))
    assert attrs["a"] == 1
    assert "b" not in attrs


def test_set_attributes_on_non_recording_span() -> None:
    spans.set_attributes(trace.INVALID_SPAN, {"a": 1})


# -- switched off ---------------------------------------------------------------


def test_tracing_off_emits_nothing(telemetry, switches_reset) -> None:
    switches.configure(tracing=False)
    with spans.span(NAME, {"a": 1}) as current:
        assert current is trace.INVALID_SPAN
        assert not current.is_recording()
    with pytest.raises(ValueError), spans.span(NAME):
        raise ValueError("still raised")
    assert telemetry.spans() == []


def test_tracing_off_by_environment(telemetry, monkeypatch) -> None:
    monkeypatch.setenv("DASH_OAUTH_OTEL_TRACING", "false")
    with spans.span(NAME):
        pass
    assert telemetry.spans() == []
