"""A Dash app behind login whose background callback answers ``current_user().sub``.

:func:`build` makes the app for a background-callback manager; with a client
the app is behind login (the web process), without one it only registers the
callback (what a Celery worker needs).  A Celery worker for Dash's
``CeleryManager`` runs::

    TEST_BG_WORKER=1 celery -A tests.workers.background_app:celery_app worker -Q <queue>

with ``TEST_BG_CELERY_URL`` (broker and result backend) and ``TEST_BG_QUEUE``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from dash import Dash
from dash import Input
from dash import Output
from dash import html

from dash_oauth_otel import OAuthClient
from dash_oauth_otel.adapter import DashOAuth
from dash_oauth_otel.adapter import current_user

DEFAULT_URL = "redis://127.0.0.1:6379/12"


def make_celery(url: str, queue: str) -> Celery:
    """The Celery app of Dash's ``CeleryManager``: broker and results on ``url``."""
    celery = Celery("dash_oauth_otel_background_tests", broker=url, backend=url)
    celery.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=600,
        task_default_queue=queue,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
    )
    return celery


def build(manager: Any, client: OAuthClient | None = None, **options: Any) -> Dash:
    """The app: a button whose background callback names the signed-in user and its process."""
    app = Dash(__name__)
    if client is not None:
        DashOAuth(app, client, **options)
    app.layout = html.Div(
        [
            html.Button("Who am I (background)?", id="bg-whoami"),
            html.Pre(id="bg-answer"),
            html.Pre(id="bg-pid"),
        ]
    )

    @app.callback(
        Output("bg-answer", "children"),
        Output("bg-pid", "children"),
        Input("bg-whoami", "n_clicks"),
        background=True,
        manager=manager,
        prevent_initial_call=True,
    )
    def who(_clicks: int) -> tuple[str, str]:
        user = current_user()
        return (user.sub if user is not None else "nobody"), str(os.getpid())

    return app


celery_app = make_celery(
    os.environ.get("TEST_BG_CELERY_URL", DEFAULT_URL), os.environ.get("TEST_BG_QUEUE", "celery")
)
if os.environ.get("TEST_BG_WORKER") == "1":
    from dash import CeleryManager

    app = build(CeleryManager(celery_app))
