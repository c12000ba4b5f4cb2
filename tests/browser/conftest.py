"""Real-browser fixtures: Debian's Chromium driven by Playwright, one browser per run.

Every test gets fresh browser contexts (isolated cookie jars) that are closed
afterwards, a screenshot helper writing to ``artifacts/browser/``, and the
helpers below for the provider's development pages and the app's pages.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import CDPSession
from playwright.sync_api import Page
from playwright.sync_api import Request
from playwright.sync_api import Response
from playwright.sync_api import expect
from werkzeug.serving import make_server

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from examples.basic_app import create_app
from tests.adapter.conftest import SECRET
from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.idp.harness import TestProvider

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
SESSION_COOKIE = "dash_oauth_session"
BINDING_COOKIE = "dash_oauth_binding"
OAUTH_PARAMS = ("code=", "state=", "iss=", "fp=")
FLOW_TIMEOUT = 15_000  # ms: a whole login round trip through the provider

expect.set_options(timeout=FLOW_TIMEOUT)


# -- browser and contexts ---------------------------------------------------------


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """The session's Chromium."""
    return chromium


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Make isolated browser contexts (own cookie jars); all are closed after the test.

    Chromium fetches ``/favicon.ico`` for pages that name no icon, such as the
    module's own pages, and the guard answers that fetch like a page load: with
    a live provider session it completes a whole login in the background (see
    ``test_module_pages_start_no_login_in_the_background``).  Chromium skips
    favicon fetches while Playwright intercepts requests, so every context gets
    a route unless made with ``favicon=True``: each test then checks one thing.
    """
    made: list[BrowserContext] = []

    def make(*, favicon: bool = False) -> BrowserContext:
        context = browser.new_context(viewport={"width": 1000, "height": 700})
        context.set_default_timeout(FLOW_TIMEOUT)
        context.set_default_navigation_timeout(FLOW_TIMEOUT)
        if not favicon:
            context.route("**/favicon.ico", lambda route: route.fulfill(status=404, body=""))
        made.append(context)
        return context

    try:
        yield make
    finally:
        for context in made:
            context.close()


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    """A fresh browser context for the test."""
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A tab in the test's context."""
    return context.new_page()


@pytest.fixture
def running(idp: TestProvider) -> Iterator[RunningApp]:
    """The example app with default options, served on loopback."""
    with serve_app(idp) as app:
        yield app


@contextmanager
def serve_cross_site(
    idp: TestProvider,
    *,
    prefix: str = "/",
    response_mode: str | None = None,
    **options: Any,
) -> Iterator[RunningApp]:
    """Like ``serve_app``, but the app's origin is ``http://localhost:<port>``.

    Sites ignore ports, so an app on ``127.0.0.1`` is same-site with the
    provider (also on ``127.0.0.1``) and SameSite never matters there.  On
    ``localhost`` the provider is another site, as in a real deployment: its
    redirects and posts to the app are cross-site requests.
    """

    class LateApp:
        target: Any = None

        def __call__(self, environ: Any, start_response: Any) -> Any:
            return self.target(environ, start_response)

    late = LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    origin = f"http://localhost:{server.server_port}"
    registered = idp.register_client(
        [f"{origin}{prefix}oauth/callback"],
        post_logout_redirect_uris=[f"{origin}{prefix}oauth/signed-out", f"{origin}{prefix}"],
    )
    provider = oidc_discover(idp.issuer, name="test-idp", allow_insecure_loopback=True)
    client = OAuthClient(
        provider=provider,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        redirect_uri=f"{origin}{prefix}oauth/callback",
        scopes=("profile", "email", "groups"),
        state_key=SECRET,
        state_store=MemoryStore(),
        response_mode=response_mode,  # type: ignore[arg-type]
    )
    app = create_app(client, **options)
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
def serve(idp: TestProvider, *, cross_site: bool = False, **options: Any) -> Iterator[RunningApp]:
    """Serve the example app same-site (``serve_app``) or cross-site with the provider."""
    with (serve_cross_site if cross_site else serve_app)(idp, **options) as running:
        yield running


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save a screenshot as ``artifacts/browser/<test>-<step>.png``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")

    def take(target: Page, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}-{step}.png"
        target.screenshot(path=str(path), full_page=True)
        return path

    return take


# -- what the browser did ------------------------------------------------------------


@dataclass
class Traffic:
    """Navigations of a context, and the authorization codes its callbacks carried."""

    navigations: list[tuple[str, str]] = field(default_factory=list)
    documents: list[tuple[str, str, int]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        if not request.is_navigation_request():
            return
        self.navigations.append((request.method, request.url))
        params: dict[str, str] = {}
        if "/oauth/callback" in request.url:
            params.update(parse_qsl(urlsplit(request.url).query))
            if request.method == "POST" and request.post_data:
                params.update(parse_qsl(request.post_data))
        if params.get("code"):
            self.codes.append(params["code"])

    def answered(self, response: Response) -> None:
        request = response.request
        if request.is_navigation_request():
            self.documents.append((request.method, request.url, response.status))

    def urls(self, method: str | None = None) -> list[str]:
        return [url for m, url in self.navigations if method is None or m == method]

    def status_of(self, method: str, url: str) -> int | None:
        """The HTTP status of the last ``method`` navigation to ``url`` (query ignored)."""
        found = [s for m, u, s in self.documents if m == method and u.split("?")[0] == url]
        return found[-1] if found else None


def watch(context: BrowserContext) -> Traffic:
    """Record every navigation of ``context`` (redirect hops included) and its status."""
    traffic = Traffic()
    context.on("request", traffic.record)
    context.on("response", traffic.answered)
    return traffic


@dataclass
class ServerLog:
    """The requests an app received: method, path, query, ``Sec-Fetch-Dest`` and status."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def paths(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


def log_requests(running: RunningApp) -> ServerLog:
    """Record every request the app receives from now on (a WSGI wrapper)."""
    log = ServerLog()
    inner = running.app.server.wsgi_app

    def wrapper(environ: dict[str, Any], start_response: Any) -> Any:
        entry = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "dest": environ.get("HTTP_SEC_FETCH_DEST"),
            "status": None,
        }
        log.requests.append(entry)

        def record_status(status: str, headers: Any, *args: Any) -> Any:
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, *args)

        return inner(environ, record_status)

    running.app.server.wsgi_app = wrapper
    return log


class CallbackHold:
    """Hold a tab's requests to the app's callback and keep their URLs.

    Chrome DevTools ``Fetch`` interception sees every hop of a redirect chain
    (Playwright's ``page.route`` only sees the first), so the provider's
    redirect to the callback is caught before the app receives it; the tab
    gets a placeholder page instead.
    """

    def __init__(self, context: BrowserContext, page: Page, callback_url: str) -> None:
        self.urls: list[str] = []
        self._cdp: CDPSession | None = context.new_cdp_session(page)
        self._cdp.on("Fetch.requestPaused", self._paused)
        self._cdp.send(
            "Fetch.enable",
            {"patterns": [{"urlPattern": callback_url + "*", "requestStage": "Request"}]},
        )

    def _paused(self, event: dict[str, Any]) -> None:
        self.urls.append(event["request"]["url"])
        assert self._cdp is not None
        body = base64.b64encode(b"<!doctype html><p id=held>callback held</p>").decode()
        self._cdp.send(
            "Fetch.fulfillRequest",
            {
                "requestId": event["requestId"],
                "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": "text/html"}],
                "body": body,
            },
        )

    def wait(self, page: Page) -> str:
        """The held callback URL, once the tab got there."""
        page.wait_for_selector("#held")
        assert len(self.urls) == 1, self.urls
        return self.urls[0]

    def release(self) -> None:
        """Stop holding: later callbacks reach the app."""
        if self._cdp is not None:
            self._cdp.send("Fetch.disable")
            self._cdp.detach()
            self._cdp = None


def poll(page: Page, predicate: Callable[[], Any], *, timeout: float = FLOW_TIMEOUT / 1000) -> Any:
    """Wait (letting the browser's events run) until ``predicate()`` is truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {predicate}"
        page.wait_for_timeout(100)


# -- the provider's and the app's pages ----------------------------------------------


def sign_in_at_provider(page: Page, username: str = "alice") -> None:
    """Fill in the provider's development login form and submit it."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")


def log_in(
    page: Page, running: RunningApp, path: str = "/reports?x=1", username: str = "alice"
) -> str:
    """Open ``path`` without a session, sign in at the provider, land back on ``path``."""
    target = running.url + path
    page.goto(target)
    expect(page.locator("input[name=login]")).to_be_visible()
    assert page.url.startswith(running.client.provider.issuer + "/"), page.url
    sign_in_at_provider(page, username)
    page.wait_for_url(target)
    expect_signed_in(page, username.capitalize())
    assert_clean(page)
    return target


def cancel_at_provider(page: Page) -> None:
    """Abort the interaction on the provider's login page (answers ``access_denied``)."""
    page.wait_for_selector("input[name=login]")
    page.click("a:has-text('Cancel')")


def expect_signed_in(page: Page, name: str = "Alice") -> None:
    """The example app's page shows the signed-in user."""
    expect(page.locator("#greeting")).to_have_text(f"Signed in as {name}")


def ask_whoami(page: Page, sub: str = "alice") -> str:
    """Click ``#whoami`` and return the answer once it names ``sub`` for this click."""
    before = page.locator("#answer").inner_text()
    page.click("#whoami")
    answer = page.locator("#answer")
    expect(answer).to_contain_text(f"sub={sub} ")
    expect(answer).not_to_have_text(before)
    return answer.inner_text()


def expect_error_page(page: Page, running: RunningApp, error: str) -> str:
    """The module's error page names ``error``; the address bar holds no OAuth parameter."""
    expect(page.locator("#dash-oauth-error")).to_have_text(error)
    expect(page.locator("#dash-oauth-error-description")).not_to_be_empty()
    expect(page.locator("#dash-oauth-retry")).to_be_visible()
    assert page.evaluate("location.href") == running.origin + running.module.url("callback")
    assert_clean(page)
    return page.content()


def assert_clean(page: Page) -> None:
    """Neither the address nor the title holds an OAuth parameter."""
    href = page.evaluate("location.href")
    title = page.evaluate("document.title")
    for marker in OAUTH_PARAMS:
        assert marker not in href, href
        assert marker not in title, title


def cookie(context: BrowserContext, name: str) -> dict[str, Any] | None:
    """The context's module cookie ``name`` (HttpOnly ones included), if any.

    ``name`` is the base name: the module ends it in a digest of the app's client.
    """
    pattern = re.compile(rf"(__Host-)?{re.escape(name)}(_[0-9a-f]{{8}})?")
    found = [c for c in context.cookies() if pattern.fullmatch(c["name"])]
    assert len(found) <= 1, found
    return dict(found[0]) if found else None


def session_id(context: BrowserContext) -> str:
    """The app session id the browser holds."""
    found = cookie(context, SESSION_COOKIE)
    assert found is not None, [c["name"] for c in context.cookies()]
    return str(found["value"])


def app_status(context: BrowserContext, running: RunningApp) -> dict[str, Any]:
    """``/oauth/status`` as seen with the context's cookies."""
    response = context.request.get(running.origin + running.module.url("status"))
    assert response.ok, response.status
    body: dict[str, Any] = response.json()
    return body


def replace_binding(context: BrowserContext, running: RunningApp) -> str:
    """Overwrite the binding cookie with another well-formed value; return it."""
    value = secrets.token_urlsafe(32)
    context.add_cookies(
        [
            {
                "name": running.module.cookies.binding_name,
                "value": value,
                "url": running.origin + "/",
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    return value


def assert_no_secrets(secrets_seen: set[str], **texts: str) -> None:
    """None of ``secrets_seen`` occurs in any of ``texts``."""
    present = {s for s in secrets_seen if s}
    assert present, "no secrets collected to scan for"
    for where, text in texts.items():
        leaked = [s[:12] + "…" for s in present if s in text]
        assert not leaked, f"{where} contains {len(leaked)} secret(s): {leaked}"
