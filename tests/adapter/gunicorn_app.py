"""WSGI entry point for multi-process tests: the example app configured from the environment."""

from __future__ import annotations

import os

from dash_oauth_otel.adapter.module import get_module
from examples.basic_app import create_app
from tests.env_client import client_from_test_env

_client = client_from_test_env()
server = create_app(_client, public_routes=["/pid"]).server


@server.route("/pid")
def pid() -> dict[str, object]:
    """Which worker answered, and whether it saw a session (public: answers signed out too)."""
    module = get_module(server)
    return {"pid": os.getpid(), "authenticated": module.current_session() is not None}
