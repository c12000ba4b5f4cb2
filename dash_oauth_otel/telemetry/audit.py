"""Audit events: one structured record per security-relevant step.

Each event is delivered to three places, each independently and best-effort:

* the audit hook of the app whose work emits it (its ``audit_hook``, see
  :mod:`dash_oauth_otel.telemetry.settings`), else the process hook
  (:func:`set_audit_hook`), called with a plain dict;
* the standard :mod:`logging` logger ``dash_oauth_otel.audit`` (the dict in
  ``record.audit`` and a JSON message, ready for a JSON-lines handler);
* an OpenTelemetry log record with ``event_name`` set to the event type, when
  logs are switched on (see :mod:`dash_oauth_otel.telemetry.switches`).

Events never carry a token, code, state, verifier, nonce, secret or cookie
value: such values appear only as keyed digests (``*_digest`` fields, see
:mod:`dash_oauth_otel.telemetry.redact`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from typing import Final

from opentelemetry._logs import LogRecord
from opentelemetry._logs import SeverityNumber

from dash_oauth_otel._process import current_pid
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry._scope import get_logger
from dash_oauth_otel.telemetry.correlation import context_attributes
from dash_oauth_otel.telemetry.correlation import current_trace_id
from dash_oauth_otel.telemetry.settings import AuditHook
from dash_oauth_otel.telemetry.settings import current_settings
from dash_oauth_otel.telemetry.switches import logs_enabled

__all__ = [
    "AUDIT_AUTHENTICATED_CHANGED",
    "AUDIT_BACKCHANNEL_LOGOUT",
    "AUDIT_BACKCHANNEL_LOGOUT_REJECTED",
    "AUDIT_CALLBACK_ISS_MISMATCH",
    "AUDIT_CALLBACK_ISS_MISSING",
    "AUDIT_CALLBACK_QUERY_REJECTED",
    "AUDIT_CALLBACK_RECEIVED",
    "AUDIT_CALLBACK_VALIDATION_FAILED",
    "AUDIT_CALLBACK_VALIDATION_SUCCESS",
    "AUDIT_ERROR_STATE_CONSUMED",
    "AUDIT_ERROR_STATE_CONSUMPTION_FAILED",
    "AUDIT_FRONTCHANNEL_LOGOUT",
    "AUDIT_FRONTCHANNEL_LOGOUT_REJECTED",
    "AUDIT_INVALID_BROWSER_TOKEN",
    "AUDIT_LOGIN_FAILED",
    "AUDIT_LOGIN_RATE_LIMITED",
    "AUDIT_LOGIN_SUCCESS",
    "AUDIT_LOGOUT",
    "AUDIT_LOGOUT_RETURN",
    "AUDIT_PENDING_LOGIN_EVICTED",
    "AUDIT_REFRESH_FAILED_BUT_KEPT_SESSION",
    "AUDIT_REDIRECT_ISSUED",
    "AUDIT_ROUTE_REFUSED",
    "AUDIT_SESSION_ENDED",
    "AUDIT_SESSION_REJECTED",
    "AUDIT_SESSION_STARTED",
    "AUDIT_STALE_RESULT_REVOKED",
    "AUDIT_STATE_PARSE_FAILURE",
    "AUDIT_STATE_STORE_LOOKUP_FAILED",
    "AUDIT_TASK_REJECTED",
    "AUDIT_TOKEN_EXCHANGE",
    "AUDIT_TOKEN_EXCHANGE_ERROR",
    "AUDIT_TOKEN_INTROSPECTION",
    "AUDIT_TOKEN_REFRESH",
    "AUDIT_TOKEN_REVOCATION",
    "AUDIT_USERINFO",
    "AuditHook",
    "deliver_to_hook",
    "ERROR",
    "HTTP_ERROR",
    "TRANSPORT_ERROR",
    "emit",
    "set_audit_hook",
]


AUDIT_REDIRECT_ISSUED: Final = "audit_redirect_issued"
AUDIT_CALLBACK_QUERY_REJECTED: Final = "audit_callback_query_rejected"
AUDIT_CALLBACK_ISS_MISSING: Final = "audit_callback_iss_missing"
AUDIT_CALLBACK_ISS_MISMATCH: Final = "audit_callback_iss_mismatch"
AUDIT_CALLBACK_RECEIVED: Final = "audit_callback_received"
AUDIT_CALLBACK_VALIDATION_SUCCESS: Final = "audit_callback_validation_success"
AUDIT_CALLBACK_VALIDATION_FAILED: Final = "audit_callback_validation_failed"
AUDIT_STATE_PARSE_FAILURE: Final = "audit_state_parse_failure"
AUDIT_STATE_STORE_LOOKUP_FAILED: Final = "audit_state_store_lookup_failed"
AUDIT_TOKEN_EXCHANGE: Final = "audit_token_exchange"
AUDIT_TOKEN_EXCHANGE_ERROR: Final = "audit_token_exchange_error"
AUDIT_TOKEN_REFRESH: Final = "audit_token_refresh"
AUDIT_TOKEN_REVOCATION: Final = "audit_token_revocation"
AUDIT_TOKEN_INTROSPECTION: Final = "audit_token_introspection"
AUDIT_USERINFO: Final = "audit_userinfo"
AUDIT_LOGIN_SUCCESS: Final = "audit_login_success"
AUDIT_LOGIN_FAILED: Final = "audit_login_failed"
AUDIT_LOGOUT: Final = "audit_logout"
AUDIT_LOGOUT_RETURN: Final = "audit_logout_return"
AUDIT_SESSION_STARTED: Final = "audit_session_started"
AUDIT_SESSION_ENDED: Final = "audit_session_ended"
AUDIT_SESSION_REJECTED: Final = "audit_session_rejected"
AUDIT_REFRESH_FAILED_BUT_KEPT_SESSION: Final = "audit_refresh_failed_but_kept_session"
AUDIT_INVALID_BROWSER_TOKEN: Final = "audit_invalid_browser_token"
AUDIT_STALE_RESULT_REVOKED: Final = "audit_stale_result_revoked"
AUDIT_TASK_REJECTED: Final = "audit_task_rejected"
AUDIT_BACKCHANNEL_LOGOUT: Final = "audit_backchannel_logout"
AUDIT_BACKCHANNEL_LOGOUT_REJECTED: Final = "audit_backchannel_logout_rejected"
AUDIT_FRONTCHANNEL_LOGOUT: Final = "audit_frontchannel_logout"
AUDIT_FRONTCHANNEL_LOGOUT_REJECTED: Final = "audit_frontchannel_logout_rejected"
AUDIT_LOGIN_RATE_LIMITED: Final = "audit_login_rate_limited"
AUDIT_PENDING_LOGIN_EVICTED: Final = "audit_pending_login_evicted"
AUDIT_ROUTE_REFUSED: Final = "audit_route_refused"
AUDIT_ERROR_STATE_CONSUMED: Final = "audit_error_state_consumed"
"""The provider answered a login with an error; the login's one-time values are spent."""
AUDIT_ERROR_STATE_CONSUMPTION_FAILED: Final = "audit_error_state_consumption_failed"
"""An error answer of the provider whose login could not be found or spent."""
AUDIT_AUTHENTICATED_CHANGED: Final = "audit_authenticated_changed"
"""A browser's session became signed in, or stopped being signed in."""
ERROR: Final = "error"
HTTP_ERROR: Final = "http_error"
TRANSPORT_ERROR: Final = "transport_error"

_ERROR_EVENTS = frozenset({ERROR, HTTP_ERROR, TRANSPORT_ERROR, AUDIT_TOKEN_EXCHANGE_ERROR})
_WARN_EVENTS = frozenset(
    {
        AUDIT_INVALID_BROWSER_TOKEN,
        AUDIT_LOGIN_RATE_LIMITED,
        AUDIT_PENDING_LOGIN_EVICTED,
        AUDIT_ROUTE_REFUSED,
        AUDIT_REFRESH_FAILED_BUT_KEPT_SESSION,
        AUDIT_SESSION_REJECTED,
        AUDIT_STALE_RESULT_REVOKED,
    }
)

# Keys of fields translated to catalog attribute names in OTel log records.
_OTEL_KEYS: Mapping[str, str] = {
    "provider": attr.OAUTH_PROVIDER_NAME,
    "issuer": attr.OAUTH_PROVIDER_ISSUER,
    "client_id_digest": attr.OAUTH_CLIENT_ID_DIGEST,
    "phase": attr.OAUTH_PHASE,
    "trace_id": attr.TRACE_ID,
    "status": attr.OAUTH_STATUS,
    "module_id": attr.DASH_MODULE_ID,
    "session_id_digest": attr.DASH_SESSION_ID_DIGEST,
    "process_id": attr.DASH_PROCESS_ID,
    "main_process_id": attr.DASH_MAIN_PROCESS_ID,
    "session.is_async": attr.DASH_SESSION_IS_ASYNC,
    "type": "event.type",
}

_log = logging.getLogger("dash_oauth_otel.audit")
_internal = logging.getLogger("dash_oauth_otel.telemetry")
_hook: AuditHook | None = None


def _current_hook() -> AuditHook | None:
    settings = current_settings()
    if settings is not None and settings.audit_hook is not None:
        return settings.audit_hook
    return _hook


def set_audit_hook(hook: AuditHook | None) -> None:
    """Install the process default audit hook (``None`` removes it).

    An app's own hook (the Dash module's ``audit_hook`` option) receives the
    events of its work instead.

    The hook receives every event as a new ``dict``.  An exception raised by the
    hook is logged on ``dash_oauth_otel.telemetry`` and never breaks a login.
    """
    global _hook
    _hook = hook


def _severity(event_type: str, fields: Mapping[str, Any]) -> tuple[SeverityNumber, int]:
    if event_type in _ERROR_EVENTS:
        return SeverityNumber.ERROR, logging.ERROR
    if event_type.endswith(("_failed", "_failure", "_rejected", "_mismatch", "_missing")):
        return SeverityNumber.WARN, logging.WARNING
    if event_type in _WARN_EVENTS:
        return SeverityNumber.WARN, logging.WARNING
    status = fields.get("status")
    if isinstance(status, str) and status != "ok":
        return SeverityNumber.WARN, logging.WARNING
    return SeverityNumber.INFO, logging.INFO


def _otel_attributes(event: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key == "timestamp" or value is None or isinstance(value, (dict, list, tuple)):
            continue
        out[_OTEL_KEYS.get(key, key)] = value
    return out


def emit(event_type: str, **fields: Any) -> dict[str, Any]:
    """Build and deliver one audit event; return the event as delivered.

    :param event_type: A catalog name, e.g. :data:`AUDIT_REDIRECT_ISSUED`.
    :param fields: The event's fields; ``None`` values are dropped.  Sensitive
        values must already be digests.
    """
    event: dict[str, Any] = {
        "type": event_type,
        "trace_id": fields.pop("trace_id", None) or current_trace_id(),
        "timestamp": time.time(),
        "process_id": current_pid(),
    }
    for key, value in context_attributes().items():
        event.setdefault(key.replace("dash.", ""), value)
    event.update((k, v) for k, v in fields.items() if v is not None)
    otel_severity, log_level = _severity(event_type, event)
    hook = _current_hook()
    if hook is not None:
        try:
            hook(dict(event))
        except Exception:
            _internal.warning("the audit hook raised for %s", event_type, exc_info=True)
    try:
        if _log.isEnabledFor(log_level):
            _log.log(
                log_level,
                json.dumps(event, default=str, sort_keys=True),
                extra={"audit": dict(event)},
            )
    except Exception:  # pragma: no cover - logging never breaks the flow
        _internal.warning("could not log audit event %s", event_type, exc_info=True)
    if logs_enabled():
        try:
            get_logger().emit(
                LogRecord(
                    timestamp=int(event["timestamp"] * 1e9),
                    severity_number=otel_severity,
                    severity_text=otel_severity.name,
                    body=event_type,
                    attributes=_otel_attributes(event),
                    event_name=event_type,
                )
            )
        except Exception:
            _internal.warning("could not emit OTel log for %s", event_type, exc_info=True)
    return event


def deliver_to_hook(event: dict[str, Any]) -> None:
    """Hand an event emitted in a worker process to this process's hook and logger.

    The event keeps the worker's ``process_id`` (and ``main_process_id``); its
    OTel log record was emitted in the worker, so it is not emitted again here.
    """
    hook = _current_hook()
    if hook is not None:
        try:
            hook(dict(event))
        except Exception:
            _internal.warning("the audit hook raised for %s", event.get("type"), exc_info=True)
    event_type = str(event.get("type", ""))
    _, log_level = _severity(event_type, event)
    try:
        if _log.isEnabledFor(log_level):
            _log.log(
                log_level,
                json.dumps(event, default=str, sort_keys=True),
                extra={"audit": dict(event)},
            )
    except Exception:  # pragma: no cover - logging never breaks the flow
        _internal.warning("could not log audit event %s", event_type, exc_info=True)
