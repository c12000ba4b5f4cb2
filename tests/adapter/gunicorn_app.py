"""WSGI entry point for multi-process tests: the example app configured from the environment."""

from __future__ import annotations

import os

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import RedisStore
from dash_oauth_otel import oidc_discover
from dash_oauth_otel.adapter.module import get_module
from examples.basic_app import create_app


def _store():
    if os.environ.get("TEST_REDIS_NAMESPACE"):
        return RedisStore.from_url(
            "redis://127.0.0.1:6379/0", namespace=os.environ["TEST_REDIS_NAMESPACE"]
        )
    return DiskcacheStore(os.environ["TEST_STORE_DIR"])


_client = OAuthClient(
    provider=oidc_discover(os.environ["TEST_ISSUER"], allow_insecure_loopback=True),
    client_id=os.environ["TEST_CLIENT_ID"],
    client_secret=os.environ["TEST_CLIENT_SECRET"],
    redirect_uri=os.environ["TEST_REDIRECT_URI"],
    scopes=("profile", "email", "groups"),
    state_key=os.environ["TEST_SECRET"],
    state_store=_store(),
)
server = create_app(_client, public_routes=["/pid"]).server


@server.route("/pid")
def pid() -> dict[str, object]:
    """Which worker answered, and whether it saw a session (public: answers signed out too)."""
    module = get_module(server)
    return {"pid": os.getpid(), "authenticated": module.current_session() is not None}
