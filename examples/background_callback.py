"""A background callback that knows who clicked: ``current_user()`` in a DiskcacheManager job.

The job runs in another process; the module carries the signed-in user's
non-secret claims (and the trace context) into it.  Configure from the
environment like ``examples/basic_app.py`` and run::

    python examples/background_callback.py
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import diskcache
from dash import Dash
from dash import DiskcacheManager
from dash import Input
from dash import Output
from dash import html

from dash_oauth_otel import OAuthClient
from dash_oauth_otel.adapter import DashOAuth
from dash_oauth_otel.adapter import background_trace
from dash_oauth_otel.adapter import client_from_env
from dash_oauth_otel.adapter import current_user


def create_app(client: OAuthClient, *, cache_dir: str | None = None, **options: Any) -> Dash:
    """The example app: a report built in a background job for the signed-in user."""
    cache = diskcache.Cache(cache_dir or tempfile.mkdtemp(prefix="dash-bg-"))
    manager = DiskcacheManager(cache)
    app = Dash(__name__, background_callback_manager=manager)
    DashOAuth(app, client, **options)
    app.layout = html.Div(
        [
            html.H1("Reports"),
            html.Button("Build my report", id="build"),
            html.Pre(id="report"),
        ]
    )

    @app.callback(
        Output("report", "children"),
        Input("build", "n_clicks"),
        background=True,
        prevent_initial_call=True,
    )
    def build_report(_clicks: int) -> str:
        with background_trace():  # spans here join the trace of the click's request
            user = current_user()
            return f"report for {user.sub if user else 'nobody'} (job pid {os.getpid()})"

    return app


def main() -> None:  # pragma: no cover - manual entry point
    create_app(client_from_env()).run(host="127.0.0.1", port=8050, debug=False)


if __name__ == "__main__":
    main()
