"""Telemetry settings of one app: signal switches, audit hook, digest key.

Each Dash module holds its own :class:`TelemetrySettings` and makes them
current (:func:`use_settings`) while it serves a request of its app, sweeps its
sessions, or runs one of its tasks in a worker; threads started for that work
carry them along (they live in a :mod:`contextvars` variable).  Two apps in one
process therefore never change each other's telemetry, and no constructor
changes process-wide state.

Outside any scope the process defaults apply: the switches of
:func:`~dash_oauth_otel.telemetry.switches.configure` and the environment, the
hook of :func:`~dash_oauth_otel.telemetry.audit.set_audit_hook` and the key of
:func:`~dash_oauth_otel.telemetry.redact.set_digest_key`.  A setting left
``None`` in a scope falls back to the same default.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from dash_oauth_otel.errors import ConfigError

__all__ = [
    "AuditHook",
    "TelemetrySettings",
    "activate",
    "current_settings",
    "normalize_digest_key",
    "use_settings",
]

AuditHook = Callable[[dict[str, Any]], None]
"""A callable receiving every audit event as a new ``dict``."""

_current: ContextVar[TelemetrySettings | None] = ContextVar(
    "dash_oauth_otel_telemetry_settings", default=None
)


def normalize_digest_key(key: bytes | str) -> bytes:
    """Return a digest key as bytes, refusing one shorter than 32 bytes."""
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < 32:
        raise ConfigError(
            "audit_digest_key must be at least 32 bytes; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return raw


@dataclass(frozen=True)
class TelemetrySettings:
    """What one app asks of the package's telemetry.

    :param tracing: Emit spans (``None``: the process default).
    :param logs: Emit audit events as OTel log records (``None``: the default).
    :param metrics: Record metrics (``None``: the default).
    :param audit_hook: Called with each audit event (``None``: the process hook).
    :param digest_key: Key of the digests in events and spans (``None``: the
        process key).
    """

    tracing: bool | None = None
    logs: bool | None = None
    metrics: bool | None = None
    audit_hook: AuditHook | None = None
    digest_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.digest_key is not None:
            object.__setattr__(self, "digest_key", normalize_digest_key(self.digest_key))

    def switch(self, name: str) -> bool | None:
        """The setting of switch ``name`` (``tracing``, ``logs``, ``metrics``)."""
        value: bool | None = getattr(self, name)
        return value


def current_settings() -> TelemetrySettings | None:
    """The settings of the app whose work is running, if any."""
    return _current.get()


@contextmanager
def use_settings(settings: TelemetrySettings | None) -> Iterator[None]:
    """Make ``settings`` current for the block (``None``: the process defaults)."""
    token = _current.set(settings)
    try:
        yield
    finally:
        _current.reset(token)


def activate(settings: TelemetrySettings | None) -> None:
    """Make ``settings`` current until the next call (for request hooks)."""
    _current.set(settings)
