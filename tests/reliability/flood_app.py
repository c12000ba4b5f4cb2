"""WSGI app of the anonymous-flood tests: the example app with ``form_post`` and ``Strict`` cookies.

Configured from the environment like ``tests/adapter/gunicorn_app.py``; the
store is the real ``DiskcacheStore`` (``TEST_STORE_DIR``) or ``RedisStore``
(``TEST_REDIS_NAMESPACE``).
"""

from __future__ import annotations

import os

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import RedisStore
from dash_oauth_otel import oidc_discover
from examples.basic_app import create_app


def _store() -> DiskcacheStore | RedisStore:
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
    response_mode="form_post",
)
server = create_app(_client, cookie_samesite="Strict").server
