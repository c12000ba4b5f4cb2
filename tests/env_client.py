"""The client of the test apps that gunicorn serves, configured from ``TEST_*``.

``TEST_ISSUER``, ``TEST_CLIENT_ID``, ``TEST_CLIENT_SECRET``, ``TEST_REDIRECT_URI``
and ``TEST_SECRET`` name the registration; the store is a ``RedisStore`` under
``TEST_REDIS_NAMESPACE`` when set, else a ``DiskcacheStore`` in ``TEST_STORE_DIR``.
"""

from __future__ import annotations

import os
from typing import Any

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import RedisStore
from dash_oauth_otel import oidc_discover

__all__ = ["client_from_test_env", "store_from_test_env"]


def store_from_test_env() -> DiskcacheStore | RedisStore:
    """The shared store the test's processes open."""
    if os.environ.get("TEST_REDIS_NAMESPACE"):
        return RedisStore.from_url(
            "redis://127.0.0.1:6379/0", namespace=os.environ["TEST_REDIS_NAMESPACE"]
        )
    return DiskcacheStore(os.environ["TEST_STORE_DIR"])


def client_from_test_env(**options: Any) -> OAuthClient:
    """The registered client, with any other ``OAuthClient`` option given."""
    return OAuthClient(
        provider=oidc_discover(os.environ["TEST_ISSUER"], allow_insecure_loopback=True),
        client_id=os.environ["TEST_CLIENT_ID"],
        client_secret=os.environ["TEST_CLIENT_SECRET"],
        redirect_uri=os.environ["TEST_REDIRECT_URI"],
        scopes=("profile", "email", "groups"),
        state_key=os.environ["TEST_SECRET"],
        state_store=store_from_test_env(),
        **options,
    )
