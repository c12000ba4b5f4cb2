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


# provider -> the package's tracer / logger from it.  Asking a provider for a
# tracer builds a new object each time (the SDK also compares scopes), so the
# one obtained is kept for as long as the same provider is installed.
_tracers: dict[int, tuple[object, trace.Tracer]] = {}
_loggers: dict[int, tuple[object, _logs.Logger]] = {}


def get_tracer() -> trace.Tracer:
    """Return the package tracer from the current global tracer provider."""
    provider = trace.get_tracer_provider()
    entry = _tracers.get(id(provider))
    if entry is None or entry[0] is not provider:
        tracer = provider.get_tracer(SCOPE_NAME, __version__, schema_url=SCHEMA_URL)
        _tracers.clear()  # only the current provider's tracer is kept
        entry = _tracers[id(provider)] = (provider, tracer)
    return entry[1]


def get_meter() -> metrics.Meter:
    """Return the package meter from the current global meter provider."""
    return metrics.get_meter(SCOPE_NAME, __version__, schema_url=SCHEMA_URL)


def get_logger() -> _logs.Logger:
    """Return the package OTel logger from the current global logger provider."""
    provider = _logs.get_logger_provider()
    entry = _loggers.get(id(provider))
    if entry is None or entry[0] is not provider:
        logger = provider.get_logger(SCOPE_NAME, __version__, schema_url=SCHEMA_URL)
        _loggers.clear()
        entry = _loggers[id(provider)] = (provider, logger)
    return entry[1]
