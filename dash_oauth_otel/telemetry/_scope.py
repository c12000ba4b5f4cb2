"""The instrumentation scope: one tracer, meter and logger, from the API only.

The library never installs a provider.  With no SDK configured by the
application every call below returns a cheap no-op object.
"""

from __future__ import annotations

from opentelemetry import _logs
from opentelemetry import metrics
from opentelemetry import trace

from dash_oauth_otel._version import __version__

__all__ = ["SCHEMA_URL", "SCOPE_NAME", "get_logger", "get_meter", "get_tracer"]

SCOPE_NAME = "dash_oauth_otel"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


def get_tracer() -> trace.Tracer:
    """Return the package tracer from the current global tracer provider."""
    return trace.get_tracer(SCOPE_NAME, __version__, schema_url=SCHEMA_URL)


def get_meter() -> metrics.Meter:
    """Return the package meter from the current global meter provider."""
    return metrics.get_meter(SCOPE_NAME, __version__, schema_url=SCHEMA_URL)


def get_logger() -> _logs.Logger:
    """Return the package OTel logger from the current global logger provider."""
    return _logs.get_logger(SCOPE_NAME, __version__, schema_url=SCHEMA_URL)
