"""Where an app keeps its module: ``app.server.extensions["dash_oauth_otel"]``.

Everything that needs the module of the app being served (the layout hook, page
protection, ``current_user()``, background callbacks) finds it here, through the
current Flask app, never through a process-wide variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import cast

import flask

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = ["EXTENSION_KEY", "get_module"]

EXTENSION_KEY = "dash_oauth_otel"
"""The key of the module in ``flask.Flask.extensions``."""


def get_module(app: flask.Flask | None = None) -> DashOAuth | None:
    """The module attached to ``app`` (default: the current Flask app)."""
    target = app if app is not None else flask.current_app
    return cast("DashOAuth | None", target.extensions.get(EXTENSION_KEY))
