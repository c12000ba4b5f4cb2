"""The signed-in user inside Dash background callbacks.

Background callbacks run in another process (DiskcacheManager, CeleryManager),
without the request.  A ``dash.hooks.custom_data`` hook copies the user's
non-secret claims into the callback context, which Dash ships with the job;
:func:`current_user` reads them back there.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from typing import Any

import flask
from dash import callback_context
from dash import hooks

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.user import User

__all__ = ["NAMESPACE", "install", "user_from_context"]

NAMESPACE = "dash_oauth_otel"
_lock = threading.Lock()
_installed = False


def _capture(_context: Any) -> dict[str, Any] | None:
    from dash_oauth_otel.adapter.layout import user_claims
    from dash_oauth_otel.adapter.module import get_module

    record = flask.g.get("dash_oauth_session") if flask.has_request_context() else None
    module = get_module() if flask.has_app_context() else None
    if record is None or module is None:
        return None
    return {"user": user_claims(module, record)}


def install() -> None:
    """Register the custom-data hook once per process."""
    global _installed
    with _lock:
        if not _installed:
            hooks.custom_data(NAMESPACE)(_capture)
            _installed = True


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
