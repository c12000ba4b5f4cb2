"""Where the module sends browsers: never off its own origin, whatever the request says.

The unit rules of ``same_origin_path`` are in ``tests/core/test_urls.py``; four
targets through a full login are in ``tests/adapter/test_http_flow.py``.  Here
every known open-redirect shape goes through the module's routes, and request
headers try to move the ``redirect_uri`` or the post-logout target.
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urljoin
from urllib.parse import urlsplit

import httpx
import pytest

from tests.adapter.conftest import serve_app
from tests.security.support import serve

OPEN_REDIRECTS = [
    "https://evil.example/",
    "http:evil.example",
    "//evil.example/x",
    "///evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "%5C%5Cevil.example",
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "/\tevil.example",
    "/\t/evil.example",
    " //evil.example",
    "/\r\nSet-Cookie:x=1",
    "data:text/html,<script>alert(1)</script>",
]

# Header sets a proxy-unaware app might believe.
INJECTED_HEADERS = [
    {"Host": "evil.example"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    {"Forwarded": "host=evil.example;proto=https", "X-Forwarded-Port": "443"},
    {"X-Forwarded-Prefix": "/evil", "X-Original-URL": "https://evil.example/oauth/callback"},
]


@pytest.fixture(scope="module")
def app(idp_server):
    """One app for the module (each test uses its own browsers)."""
    with serve_app(idp_server) as running:
        yield running


@pytest.fixture(scope="module")
def app_without_par(idp_server):
    """An app whose authorization requests travel through the browser (no PAR)."""
    with serve(idp_server, use_par=False) as running:
        yield running


def _stays_on(origin: str, location: str) -> bool:
    """Whether a browser following ``location`` from ``origin`` stays on ``origin``."""
    target = urlsplit(urljoin(origin + "/", location))
    return f"{target.scheme}://{target.netloc}" == origin and not location.startswith(
        ("//", "/\\", "\\")
    )


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_open_redirect_through_next_after_login(app, exposure, target):
    """Open redirect: ``/oauth/login?next=<elsewhere>``, then a real login.

    The return-to URL is sealed in the state; after the login the browser is
    sent to the app's home page, never to ``<elsewhere>``.
    """
    running = app
    http = exposure.browser(running)
    first = http.get("/oauth/login", params={"next": target})
    assert first.status_code == 302
    landed = exposure.login(http, first.headers["location"]).deliver(http)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/", target
    # Already signed in: /oauth/login answers with the return-to at once.
    again = http.get("/oauth/login", params={"next": target})
    assert again.status_code == 302
    assert again.headers["location"] == "/", target


def test_same_origin_return_to_is_kept(app, exposure):
    """The legitimate case: a path with its query on the app survives the login."""
    running = app
    http = exposure.browser(running)
    landed = exposure.sign_in(http, "/reports/2024?tab=a%2Fb&q=x%20y")
    assert landed.headers["location"] == "/reports/2024?tab=a%2Fb&q=x%20y"
    assert _stays_on(running.origin, landed.headers["location"])


def test_open_redirect_through_a_crafted_page_path(app, exposure):
    """A request for the page ``//evil.example/x`` of the app.

    The guard turns the path into the return-to URL; it must come back as a
    path on the app (the sanitizer at login drops it), not as a host.
    """
    running = app
    http = exposure.browser(running)
    url = httpx.URL(running.origin).copy_with(raw_path=b"//evil.example/x")
    page = http.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 302
    login_url = page.headers["location"]
    assert login_url.startswith("/oauth/login?")
    assert _stays_on(running.origin, login_url)
    start = http.get(login_url)
    landed = exposure.login(http, start.headers["location"]).deliver(http)
    # At most the path /evil.example/x of the app itself.
    assert landed.headers["location"] in ("/", "/evil.example/x")
    assert _stays_on(running.origin, landed.headers["location"])


@pytest.mark.parametrize(
    "headers", INJECTED_HEADERS, ids=["host", "x-forwarded", "forwarded", "prefix"]
)
def test_header_injection_cannot_move_redirect_uri(app_without_par, exposure, telemetry, headers):
    """``Host`` / ``X-Forwarded-*`` / ``Forwarded`` injection at login.

    The ``redirect_uri`` sent to the provider is the configured one whatever
    the request headers say (an attacker-chosen host would receive the code),
    and the login completes normally with those headers present.
    """
    running = app_without_par
    http = exposure.browser(running)
    first = http.get("/oauth/login", params={"next": "/r"}, headers=headers)
    assert first.status_code == 302
    query = dict(parse_qsl(urlsplit(first.headers["location"]).query))
    assert query["redirect_uri"] == running.client.redirect_uri
    assert first.headers["location"].startswith(running.client.provider.authorization_endpoint)
    redirects = telemetry.events("audit_redirect_issued")
    assert [e["redirect_uri"] for e in redirects] == [running.client.redirect_uri]
    result = exposure.login(http, first.headers["location"])
    assert result.callback_url.startswith(running.client.redirect_uri + "?")
    landed = http.get(result.callback_url, headers=headers)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/r"
    # The guard's own redirects are relative: no host to inject.
    with running.http() as anonymous:
        page = anonymous.get("/reports", headers={**headers, "Accept": "text/html"})
        assert page.status_code == 302
        assert page.headers["location"].startswith("/oauth/login?next=")


@pytest.mark.parametrize(
    "headers", INJECTED_HEADERS, ids=["host", "x-forwarded", "forwarded", "prefix"]
)
def test_header_injection_cannot_move_post_logout_target(app, exposure, headers):
    """Header injection at logout: the provider is told to send the browser back to the app."""
    running = app
    http = exposure.browser(running)
    exposure.sign_in(http)
    token = http.get("/oauth/status").json()["csrf_token"]
    done = http.post(
        "/oauth/logout",
        data={"csrf_token": token},
        headers={**headers, "Origin": running.origin},
    )
    # The end-session request is a POST form; its fields name the configured origin only.
    assert done.status_code == 200 and "location" not in done.headers
    action = f'action="{running.client.provider.end_session_endpoint}"'
    assert action in done.text
    target = f'name="post_logout_redirect_uri" value="{running.origin}/oauth/signed-out"'
    assert target in done.text
    assert "evil" not in done.text


def test_login_url_in_pages_ignores_injected_host(idp, exposure):
    """The sign-in page (auto-redirect off) links to a relative login URL."""
    with serve_app(idp, auto_redirect=False) as running:
        http = exposure.browser(running)
        page = http.get(
            "/reports",
            headers={"Accept": "text/html", "Host": "evil.example", "X-Forwarded-Host": "evil"},
        )
        assert page.status_code == 401
        assert 'href="/oauth/login?next=%2Freports"' in page.text
        assert "evil" not in page.text
