"""Fixtures for the Dash module: real apps served on loopback, a real provider, a real browser."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from examples.basic_app import create_app
from tests.idp.harness import RegisteredClient
from tests.idp.harness import TestProvider

SECRET = "adapter-test-secret-Qm8vX2pL9rTz4WkB7nYc1HdF5sGj"


class _LateApp:
    """A WSGI app whose target is set once the port is known."""

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.target(environ, start_response)


@dataclass
class RunningApp:
    """A Dash app served on loopback with its registered client."""

    url: str
    origin: str
    app: Any
    client: OAuthClient
    registered: RegisteredClient

    @property
    def module(self) -> Any:
        return self.app.server.extensions["dash_oauth_otel"]

    def http(self) -> httpx.Client:
        """A cookie-keeping client standing in for a browser (redirects not followed)."""
        return httpx.Client(base_url=self.origin, timeout=15.0)


@contextmanager
def serve_app(
    idp: TestProvider,
    *,
    prefix: str = "/",
    access_token_ttl: int | None = None,
    response_mode: str | None = None,
    factory: Callable[..., Any] = create_app,
    client_options: dict[str, Any] | None = None,
    backchannel_logout: bool = False,
    **options: Any,
) -> Iterator[RunningApp]:
    """Serve an example app for a freshly registered client; stop it afterwards.

    With ``backchannel_logout`` the client is registered with the app's
    ``oauth/backchannel-logout`` as ``backchannel_logout_uri`` (and ``sid``
    required), so the provider sends logout tokens to the app.
    """
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    origin = f"http://127.0.0.1:{server.server_port}"
    registered = idp.register_client(
        [f"{origin}{prefix}oauth/callback"],
        access_token_ttl=access_token_ttl,
        post_logout_redirect_uris=[f"{origin}{prefix}oauth/signed-out", f"{origin}{prefix}"],
        backchannel_logout_uri=f"{origin}{prefix}oauth/backchannel-logout"
        if backchannel_logout
        else None,
        backchannel_logout_session_required=backchannel_logout,
    )
    provider = oidc_discover(idp.issuer, name="test-idp", allow_insecure_loopback=True)
    client = OAuthClient(
        provider=provider,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        redirect_uri=f"{origin}{prefix}oauth/callback",
        scopes=("profile", "email", "groups"),
        response_mode=response_mode,  # type: ignore[arg-type]
        **{"state_key": SECRET, "state_store": MemoryStore(), **(client_options or {})},
    )
    app = factory(client, **options)
    late.target = app.server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningApp(f"{origin}{prefix}".rstrip("/"), origin, app, client, registered)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        provider.close()


@contextmanager
def app_and_browser(idp: TestProvider, **options: Any) -> Iterator[tuple[RunningApp, httpx.Client]]:
    """Serve an app (see :func:`serve_app`) and open a cookie-keeping client on it."""
    with serve_app(idp, **options) as running, running.http() as http:
        yield running, http


@pytest.fixture
def running_app(idp: TestProvider) -> Iterator[RunningApp]:
    with serve_app(idp) as running:
        yield running


@pytest.fixture
def browser_token() -> str:
    return secrets.token_urlsafe(32)
