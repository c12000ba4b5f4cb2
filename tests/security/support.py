"""Helpers shared by the security and reliability suites.

* :func:`serve` serves a Dash app for a freshly registered client, like
  ``tests.adapter.conftest.serve_app``, with the knobs the attacks and faults
  need: the outbound timeout, PAR on or off, the redirect URIs registered at
  the provider, another provider, a custom app factory.
* :class:`Exposure` is a browser stand-in that records everything the app
  shows (pages, JSON, ``Location`` headers) and every secret the test learns
  (codes, states, tokens, cookie values, client secrets); :meth:`Exposure.check`
  then scans the telemetry, the logs and the recorded responses for them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import httpx
import pytest
from werkzeug.serving import make_server

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from dash_oauth_otel.core.state import state_store_key
from examples.basic_app import create_app
from tests import otel
from tests.adapter.conftest import SECRET
from tests.adapter.conftest import RunningApp
from tests.idp.harness import LoginResult
from tests.idp.harness import TestProvider
from tests.idp.harness import jwt_payload
from tests.idp.harness import login

SESSION_COOKIE = "dash_oauth_session"
BINDING_COOKIE = "dash_oauth_binding"

# Where a secret must never appear.  Tokens, codes and cookie values: nowhere.
# The state, nonce, PKCE verifier and form_post handles travel in URLs by
# design (to the provider, or one same-origin hop), so they are checked in
# telemetry, logs and page bodies only.  The logout CSRF token is shown to the
# page on purpose (the logout form needs it): telemetry and logs only.
EVERYWHERE = "everywhere"
NOT_IN_PAGES = "telemetry+pages"
TELEMETRY = "telemetry"


class _LateApp:
    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.target(environ, start_response)


@contextmanager
def serve(
    idp: TestProvider,
    *,
    timeout: float = 5.0,
    use_par: bool | None = None,
    response_mode: str | None = None,
    access_token_ttl: int | None = None,
    registered_redirect_uris: list[str] | None = None,
    factory: Callable[..., Any] = create_app,
    store: Any = None,
    client_options: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[RunningApp]:
    """Serve an app on loopback for a client registered at ``idp``; stop it afterwards.

    :param timeout: The outbound HTTP timeout of the app's provider.
    :param use_par: Pushed authorization requests (``None``: when offered).
    :param registered_redirect_uris: What to register instead of the app's
        own callback URL (to misconfigure it on purpose).
    """
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    origin = f"http://127.0.0.1:{server.server_port}"
    callback = f"{origin}/oauth/callback"
    registered = idp.register_client(
        registered_redirect_uris or [callback],
        access_token_ttl=access_token_ttl,
        post_logout_redirect_uris=[f"{origin}/oauth/signed-out"],
    )
    provider = oidc_discover(
        idp.issuer, name="test-idp", allow_insecure_loopback=True, timeout=timeout
    )
    client = OAuthClient(
        provider=provider,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        redirect_uri=callback,
        scopes=("profile", "email", "groups"),
        state_key=SECRET,
        state_store=store if store is not None else MemoryStore(),
        response_mode=response_mode,  # type: ignore[arg-type]
        use_par=use_par,
        **(client_options or {}),
    )
    app = factory(client, **options)
    late.target = app.server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningApp(origin, origin, app, client, registered)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        provider.close()


def state_keys(running: RunningApp) -> list[str]:
    """The one-time login values still waiting in the app's store."""
    store = running.client.state_store
    assert store is not None
    return list(store.scan("state:"))


def pending(running: RunningApp, state: str) -> bool:
    """Whether the login that sealed ``state`` can still be completed (not consumed)."""
    payload = running.client.state_sealer.unseal(state)
    store = running.client.state_store
    assert store is not None
    return store.get(state_store_key(payload["s"])) is not None


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters replaced (``None`` removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def error_code(page: httpx.Response) -> str | None:
    """The error code shown on the module's error page."""
    found = re.search(r"<code id=dash-oauth-error>([^<]*)</code>", page.text)
    return found.group(1) if found else None


@dataclass
class Exposure:
    """What the app showed during one test, and the secrets the test learned."""

    telemetry: Any
    caplog: pytest.LogCaptureFixture
    secrets: dict[str, set[str]] = field(
        default_factory=lambda: {EVERYWHERE: set(), NOT_IN_PAGES: set(), TELEMETRY: set()}
    )
    pages: list[tuple[str, str]] = field(default_factory=list)
    locations: list[tuple[str, str]] = field(default_factory=list)
    _clients: list[httpx.Client] = field(default_factory=list)
    checked: bool = False

    def secret(self, *values: str | None, level: str = EVERYWHERE) -> None:
        """Remember values that must not leak (see the module constants for ``level``)."""
        for value in values:
            if value and len(value) >= 12:
                self.secrets[level].add(value)

    def browser(self, running: RunningApp) -> httpx.Client:
        """A cookie-keeping client on ``running`` whose app responses are recorded."""
        self.secret(running.registered.client_secret, SECRET)

        def record(response: httpx.Response) -> None:
            if not str(response.url).startswith(running.origin + "/"):
                return  # the provider's own pages are not the app's output
            response.read()
            where = f"{response.request.method} {response.url.path}"
            if "location" in response.headers:
                self.locations.append((where, response.headers["location"]))
            kind = response.headers.get("content-type", "")
            # A redirect's body only repeats its Location, checked as such.
            if kind.startswith(("text/", "application/json")) and not response.is_redirect:
                self.pages.append((where, _without_end_session_hint(where, response.text)))
            for name, value in response.cookies.items():
                if SESSION_COOKIE in name:
                    self._session_secrets(running, value)
                elif BINDING_COOKIE in name:
                    self.secret(value)

        client = httpx.Client(
            base_url=running.origin, timeout=20.0, event_hooks={"response": [record]}
        )
        self._clients.append(client)
        return client

    def _session_secrets(self, running: RunningApp, sid: str) -> None:
        self.secret(sid)
        record = running.module.sessions.load(sid)
        if record is None:
            return
        token = record.token
        self.secret(token.access_token, token.refresh_token, token.id_token)
        self.secret(running.module.csrf_token(record), level=TELEMETRY)
        if token.id_token:
            self.secret(jwt_payload(token.id_token).get("nonce"), level=NOT_IN_PAGES)

    def start(self, http: httpx.Client, next_path: str = "/") -> str:
        """Open ``/oauth/login``; return the provider URL the app redirected to."""
        first = http.get("/oauth/login", params={"next": next_path})
        assert first.status_code == 302, first.text[:400]
        location = first.headers["location"]
        query = dict(parse_qsl(urlsplit(location).query))
        self.secret(query.get("state"), query.get("nonce"), level=NOT_IN_PAGES)
        return location

    def login(
        self, http: httpx.Client, authorization_url: str, username: str = "alice"
    ) -> LoginResult:
        """Log in at the provider in ``http``'s provider session; keep the callback."""
        result = login(authorization_url, username=username, http_client=http)
        self.learned(result)
        return result

    def learned(self, result: LoginResult) -> None:
        """Remember the code and state of an authorization response."""
        self.secret(result.code)
        self.secret(result.state, level=NOT_IN_PAGES)

    def sign_in(
        self, http: httpx.Client, next_path: str = "/", username: str = "alice"
    ) -> httpx.Response:
        """A whole login in ``http``: start, provider, callback (no redirect followed)."""
        result = self.login(http, self.start(http, next_path), username)
        landed = result.deliver(http)
        assert landed.status_code == 303, landed.text[:600]
        return landed

    def sinks(self) -> dict[str, dict[str, str]]:
        """Every recorded text by sink kind (``telemetry``, ``pages``, ``locations``)."""
        telemetry = {"telemetry": self.telemetry.exported_text() + _metric_attributes()}
        telemetry["logs"] = "\n".join(
            f"{r.getMessage()}\n{r.exc_text or ''}\n{getattr(r, 'audit', '')}"
            for r in self.caplog.records
            if r.name.startswith("dash_oauth_otel")
        )
        return {
            TELEMETRY: telemetry,
            "pages": {f"page {i} {w}": t for i, (w, t) in enumerate(self.pages)},
            "locations": {f"location {i} {w}": t for i, (w, t) in enumerate(self.locations)},
        }

    def check(self) -> None:
        """Assert that no remembered secret appears where it must not."""
        sinks = self.sinks()
        rules = {
            EVERYWHERE: (TELEMETRY, "pages", "locations"),
            NOT_IN_PAGES: (TELEMETRY, "pages"),
            TELEMETRY: (TELEMETRY,),
        }
        leaks = []
        for level, kinds in rules.items():
            for kind in kinds:
                for where, text in sinks[kind].items():
                    for value in self.secrets[level]:
                        if value in text:
                            leaks.append(f"{level} secret {value[:10]}… in {where}")
        self.checked = True
        assert not leaks, "\n".join(leaks)

    def close(self) -> None:
        for client in self._clients:
            client.close()


_HINT_FIELD = re.compile(r'<input type=hidden name="id_token_hint" value="[^"]*">')


def _without_end_session_hint(where: str, text: str) -> str:
    """The logout page less the one place the ID token belongs: the end-session POST's hint.

    RP-Initiated Logout sends it to the provider as ``id_token_hint``; the
    module POSTs it so that it is in no URL.  Anywhere else it is still a leak.
    """
    if where != "POST /oauth/logout":
        return text
    return _HINT_FIELD.sub("", text, count=1)


def _metric_attributes() -> str:
    data = otel._metrics.get_metrics_data()
    if data is None:
        return ""
    parts = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                parts.extend(repr(dict(p.attributes or {})) for p in metric.data.data_points)
    return "\n".join(parts)


@contextmanager
def exposure_for(
    request: pytest.FixtureRequest, telemetry: Any, caplog: pytest.LogCaptureFixture
) -> Iterator[Exposure]:
    """An :class:`Exposure` that is scanned when the test using it has passed."""
    caplog.set_level(logging.DEBUG, logger="dash_oauth_otel")
    found = Exposure(telemetry, caplog)
    try:
        yield found
    finally:
        found.close()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.passed and not found.checked:
        found.check()
