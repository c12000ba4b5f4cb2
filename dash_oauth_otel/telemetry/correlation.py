"""The correlation id that ties the pieces of one login or token operation together.

It is minted when a login starts (``login.request``), sealed into the state,
recovered at the callback, and carried into workers.  It appears on spans as the
attribute ``dash_oauth_otel.trace_id``, on audit events as ``trace_id`` and on
errors, so a message shown to a user leads to the trace.  It is independent of
the OpenTelemetry trace id (which exists only when an SDK is configured).
"""

from __future__ import annotations

import contextvars
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "context_attributes",
    "current_trace_id",
    "new_trace_id",
    "set_context_attributes",
    "set_trace_id",
    "trace_id_scope",
]

_TRACE_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dash_oauth_otel_trace_id", default=None
)


_CONTEXT: contextvars.ContextVar[dict[str, str | int] | None] = contextvars.ContextVar(
    "dash_oauth_otel_context_attributes", default=None
)


def set_context_attributes(attributes: dict[str, str | int] | None) -> None:
    """Set the ``dash.*`` metadata (module, session digest) of the current request.

    The adapter sets it per request; every span and audit event opened in the
    same context carries it.
    """
    _CONTEXT.set(dict(attributes) if attributes else None)


def context_attributes() -> dict[str, str | int]:
    """The ``dash.*`` metadata of the current context (a copy)."""
    found = _CONTEXT.get()
    return dict(found) if found else {}


def new_trace_id() -> str:
    """Mint a fresh, unguessable correlation id (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def current_trace_id() -> str | None:
    """Return the correlation id of the operation in progress, if any."""
    return _TRACE_ID.get()


def set_trace_id(trace_id: str | None) -> None:
    """Set the correlation id for the rest of the current request (``None`` clears it).

    The adapter sets a session's login id once it has resolved the session, so
    that the refresh, logout and session end of that session join its login;
    it clears it when the request ends.
    """
    _TRACE_ID.set(trace_id)


@contextmanager
def trace_id_scope(trace_id: str | None = None) -> Iterator[str]:
    """Run a block under ``trace_id`` (or the current one, or a new one)."""
    value = trace_id or _TRACE_ID.get() or new_trace_id()
    token = _TRACE_ID.set(value)
    try:
        yield value
    finally:
        _TRACE_ID.reset(token)
