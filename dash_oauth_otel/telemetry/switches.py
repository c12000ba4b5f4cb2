"""On/off switches for traces, logs and metrics, checked on every call.

Each signal is on unless turned off, by :func:`configure` (what the Dash module's
constructor options set) or by an environment variable:
``DASH_OAUTH_OTEL_TRACING``, ``DASH_OAUTH_OTEL_LOGS``, ``DASH_OAUTH_OTEL_METRICS``
(``0``, ``false``, ``no`` or ``off`` turn a signal off).  The current app's
:class:`~dash_oauth_otel.telemetry.settings.TelemetrySettings` win over an
explicit :func:`configure` value, which wins over the environment.
"""

from __future__ import annotations

import os

from dash_oauth_otel.telemetry.settings import current_settings

__all__ = ["configure", "logs_enabled", "metrics_enabled", "tracing_enabled"]

_FALSE = frozenset({"0", "false", "no", "off"})
_explicit: dict[str, bool] = {}


def configure(
    *, tracing: bool | None = None, logs: bool | None = None, metrics: bool | None = None
) -> None:
    """Set the process defaults of the switches; ``None`` leaves a switch to the environment.

    An app's own settings (the Dash module's ``tracing``, ``logs`` and
    ``metrics`` options) win inside its work.
    """
    for name, value in (("TRACING", tracing), ("LOGS", logs), ("METRICS", metrics)):
        if value is None:
            _explicit.pop(name, None)
        else:
            _explicit[name] = bool(value)


def _enabled(name: str) -> bool:
    settings = current_settings()
    if settings is not None:
        scoped = settings.switch(name.lower())
        if scoped is not None:
            return scoped
    if name in _explicit:
        return _explicit[name]
    raw = os.environ.get(f"DASH_OAUTH_OTEL_{name}")
    return raw is None or raw.strip().lower() not in _FALSE


def tracing_enabled() -> bool:
    """Return whether spans are emitted."""
    return _enabled("TRACING")


def logs_enabled() -> bool:
    """Return whether audit events are also emitted as OTel log records."""
    return _enabled("LOGS")


def metrics_enabled() -> bool:
    """Return whether metrics are recorded."""
    return _enabled("METRICS")
