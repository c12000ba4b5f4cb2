"""Fixtures for the tests against Glewlwyd (Debian's ``glewlwyd`` package).

One Glewlwyd serves the whole run (``glewlwyd``, session scope); it is
configured once through its admin API and tests register their own clients.
A failing test that used it gets the tail of Glewlwyd's log attached to its
report. When Glewlwyd is not installed the tests fail with the command that
installs it: they never skip.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext

from dash_oauth_otel.core import OAuthClient
from dash_oauth_otel.core import OAuthProvider
from dash_oauth_otel.core import oidc_discover
from dash_oauth_otel.stores import MemoryStore
from tests.glewlwyd.harness import CONF_BASIC
from tests.glewlwyd.harness import Glewlwyd
from tests.glewlwyd.harness import GlewlwydClient

STATE_KEY = "glewlwyd-state-key-Vb3kQ9sLx2Rw8TnZ5mYp1Hc7"


@pytest.fixture(scope="session")
def glewlwyd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glewlwyd]:
    """Start and configure one Glewlwyd for the whole run."""
    server = Glewlwyd(root=tmp_path_factory.mktemp("glewlwyd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gl_provider(glewlwyd: Glewlwyd) -> Iterator[OAuthProvider]:
    """Glewlwyd as the module sees it: hardened discovery of its issuer."""
    built = oidc_discover(glewlwyd.issuer, name="glewlwyd", allow_insecure_loopback=True)
    yield built
    built.close()


@pytest.fixture
def gl_client(gl_provider: OAuthProvider) -> Callable[..., OAuthClient]:
    """Build an :class:`OAuthClient` for one of Glewlwyd's clients."""

    def make(registered: GlewlwydClient = CONF_BASIC, **overrides: Any) -> OAuthClient:
        options: dict[str, Any] = {
            "provider": gl_provider,
            "client_id": registered.client_id,
            "client_secret": registered.client_secret,
            "auth_style": registered.token_endpoint_auth_method,
            "redirect_uri": registered.redirect_uris[0],
            "scopes": ("profile", "email"),
            "state_key": STATE_KEY,
            "state_store": MemoryStore(),
            "use_par": False,
            **overrides,
        }
        return OAuthClient(**options)

    return make


@pytest.fixture
def gl_context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh Chromium context (own cookie jar: no Glewlwyd session yet)."""
    context = chromium.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def browser_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach Glewlwyd's recent log to the report of a failed test that used it."""
    report = yield
    if report.failed and "glewlwyd" in getattr(item, "fixturenames", ()):
        server = getattr(item, "funcargs", {}).get("glewlwyd")
        if isinstance(server, Glewlwyd):
            report.sections.append(("Glewlwyd log (tail)", server.log_tail()))
    return report
