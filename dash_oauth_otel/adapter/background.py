"""The signed-in user inside Dash background callbacks.

Background callbacks run in another process (DiskcacheManager, CeleryManager),
without the request.  A ``dash.hooks.custom_data`` hook copies the user's
non-secret claims into the callback context, which Dash ships with the job;
:func:`current_user` reads them back there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any

import flask
from dash import callback_context
from dash import hooks
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dash_oauth_otel.adapter.extension import get_module

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.user import User

__all__ = ["NAMESPACE", "background_trace", "install", "user_from_context"]

NAMESPACE = "dash_oauth_otel"
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_installed = False


def _strip_cookies(context: Any, names: tuple[str, ...]) -> None:
    """Keep the module's cookies out of the callback context (it travels to workers)."""
    cookies = getattr(context, "cookies", None)
    if isinstance(cookies, dict):
        for name in names:
            cookies.pop(name, None)
    headers = getattr(context, "headers", None)
    if isinstance(headers, dict):
        for key in [k for k in headers if k.lower() == "cookie"]:
            kept = [
                part
                for part in str(headers[key]).split(";")
                if part.strip().split("=", 1)[0] not in names
            ]
            headers[key] = ";".join(kept).strip()


def _capture(context: Any) -> dict[str, Any] | None:
    # Dash runs custom-data hooks for every callback; only a background one
    # leaves the request (Dash marks it with the callback's ``background``
    # spec).  An older Dash without the mark gets the data on every callback.
    if not getattr(context, "ignore_register_page", True):
        return None
    from dash_oauth_otel.adapter.layout import user_claims

    record = flask.g.get("dash_oauth_session") if flask.has_request_context() else None
    module = get_module() if flask.has_app_context() else None
    if module is None:
        return None
    # Background jobs carry the callback context through the manager (a broker,
    # a disk cache): the session and binding cookies must not travel with it.
    _strip_cookies(context, (module.cookies.session_name, module.cookies.binding_name))
    if record is None:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return {"user": user_claims(module, record), "trace": carrier}


def install() -> None:
    """Register the custom-data hook once per process."""
    global _installed
    with _lock:
        if not _installed:
            hooks.custom_data(NAMESPACE)(_capture)
            _installed = True


@contextmanager
def background_trace() -> Iterator[None]:
    """Continue, inside a background callback, the trace of the request that started it.

    ::

        @callback(..., background=True)
        def report(n):
            with background_trace():
                ...  # spans here are children of the triggering request's span
    """
    carrier: dict[str, str] = {}
    try:
        data = callback_context.custom_data.get(NAMESPACE)
        if isinstance(data, dict) and isinstance(data.get("trace"), dict):
            carrier = {str(k): str(v) for k, v in data["trace"].items()}
    except Exception:
        carrier = {}
    token = otel_context.attach(_propagator.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def user_from_context() -> User | None:
    """The user carried into a (background) callback, if any."""
    from dash_oauth_otel.adapter.user import User

    try:
        data = callback_context.custom_data.get(NAMESPACE)
    except Exception:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("user"), dict):
        return None
    claims = data["user"]
    return User(
        sub=str(claims.get("sub", "")),
        claims=claims,
        groups=tuple(str(g) for g in claims.get("groups", [])),
    )
