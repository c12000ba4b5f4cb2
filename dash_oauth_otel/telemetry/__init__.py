"""Telemetry for the package: spans, audit events, digests; OpenTelemetry API only.

The library never configures an SDK; applications (and the tests) do.
"""

from __future__ import annotations

from dash_oauth_otel.telemetry.audit import emit as emit
from dash_oauth_otel.telemetry.audit import set_audit_hook as set_audit_hook
from dash_oauth_otel.telemetry.correlation import current_trace_id as current_trace_id
from dash_oauth_otel.telemetry.correlation import new_trace_id as new_trace_id
from dash_oauth_otel.telemetry.correlation import trace_id_scope as trace_id_scope
from dash_oauth_otel.telemetry.redact import digest as digest
from dash_oauth_otel.telemetry.redact import set_digest_key as set_digest_key
from dash_oauth_otel.telemetry.spans import span as span
from dash_oauth_otel.telemetry.switches import configure as configure

__all__ = [
    "configure",
    "current_trace_id",
    "digest",
    "emit",
    "new_trace_id",
    "set_audit_hook",
    "set_digest_key",
    "span",
    "trace_id_scope",
]
