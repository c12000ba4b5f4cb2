"""Fixtures for protocol tests against the real test provider."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from dash_oauth_otel.core import OAuthClient
from dash_oauth_otel.core import OAuthProvider
from dash_oauth_otel.core import oidc_discover
from dash_oauth_otel.stores import MemoryStore
from tests.idp.harness import DEFAULT_REDIRECT_URI
from tests.idp.harness import TestProvider

STATE_KEY = "test-state-key-ljoQoaF1LlqsajAIxNKu8iS2G8NP"

CLIENTS: dict[str, dict[str, Any]] = {
    "conf-basic": {"client_secret": "conf-basic-secret", "auth_style": "client_secret_basic"},
    "conf-post": {"client_secret": "conf-post-secret", "auth_style": "client_secret_post"},
    "public": {"auth_style": "none"},
    "par-required": {"client_secret": "par-required-secret"},
}


@pytest.fixture
def provider(idp: TestProvider) -> Iterator[OAuthProvider]:
    """A provider built by hardened discovery against the test provider."""
    built = oidc_discover(idp.issuer, name="test-idp", allow_insecure_loopback=True)
    yield built
    built.close()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def make_client(provider: OAuthProvider, store: MemoryStore) -> Callable[..., OAuthClient]:
    """Build a client for one of the provider's static clients."""

    def make(client_id: str = "conf-basic", **overrides: Any) -> OAuthClient:
        options: dict[str, Any] = {
            "provider": provider,
            "client_id": client_id,
            "redirect_uri": DEFAULT_REDIRECT_URI,
            "scopes": ("profile", "email", "groups"),
            "state_key": STATE_KEY,
            "state_store": store,
            "use_par": client_id == "par-required",
            **CLIENTS[client_id],
        }
        options.update(overrides)
        return OAuthClient(**options)

    return make


@pytest.fixture
def browser_token() -> str:
    return secrets.token_urlsafe(32)
