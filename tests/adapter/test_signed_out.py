"""Over HTTP: ``no-store`` on every session-dependent answer, and the signed-out marker."""

from __future__ import annotations

import re

import httpx

from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.idp.harness import login

CALLBACK_BODY = {"output": "answer.children", "inputs": [], "changedPropIds": []}


def _log_in(http: httpx.Client) -> None:
    first = http.get("/oauth/login?next=/")
    assert login(first.headers["location"], http_client=http).deliver(http).status_code == 303


def _log_out(http: httpx.Client) -> httpx.Response:
    csrf = http.get("/oauth/status").json()["csrf_token"]
    return http.post("/oauth/logout", data={"csrf_token": csrf})


def _no_store(response: httpx.Response) -> bool:
    return response.headers.get("cache-control") == "no-store"


def test_session_dependent_answers_are_no_store(running_app: RunningApp):
    with running_app.http() as http:
        assert _no_store(http.get("/"))  # the redirect to sign in
        _log_in(http)
        index = http.get("/")
        assert index.status_code == 200 and _no_store(index)
        for path in ("/_dash-layout", "/_dash-dependencies", "/oauth/status"):
            answer = http.get(path)
            assert answer.status_code == 200 and _no_store(answer), path
        update = http.post("/_dash-update-component", json=CALLBACK_BODY)
        assert _no_store(update), update.status_code
        error = http.get("/oauth/callback?state=forged&code=x")
        assert error.status_code == 400 and _no_store(error)
        signed_out = http.get("/oauth/signed-out?next=/")
        assert _no_store(signed_out)
        assert _no_store(_log_out(http))  # the end-session page
        assert _no_store(http.get("/oauth/signed-out?next=/"))
        # Dash's JavaScript bundles stay cacheable.
        bundle = re.search(r'src="(/_dash-component-suites/[^"]+)"', index.text)
        assert bundle is not None
        static = http.get(bundle.group(1))
        assert static.status_code == 200 and not _no_store(static)


def test_after_logout_the_guard_shows_the_signed_out_page(running_app: RunningApp):
    with running_app.http() as http:
        _log_in(http)
        done = _log_out(http)
        marker = [c for c in done.headers.get_list("set-cookie") if "dash_oauth_signed_out_" in c]
        assert len(marker) == 1 and "HttpOnly" in marker[0]
        assert "=1;" in marker[0]
        # A page load: the signed-out page, not a redirect to the provider.
        page = http.get("/reports", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "You signed out" in page.text
        assert 'href="/oauth/login?next=%2Freports"' in page.text
        # A Dash callback of another tab is sent to the signed-out page.
        update = http.post(
            "/_dash-update-component",
            json=CALLBACK_BODY,
            headers={"Referer": running_app.url + "/reports"},
        )
        href = update.json()["sideUpdate"]["_dash_oauth_location"]["href"]
        assert href == "/oauth/signed-out?next=%2Freports"
        # "Sign in" is the user asking: the marker goes, and auto-redirect applies again.
        start = http.get("/oauth/login?next=/reports")
        assert start.status_code == 302
        cleared = [c for c in start.headers.get_list("set-cookie") if "dash_oauth_signed_out_" in c]
        assert len(cleared) == 1 and "Max-Age=0" in cleared[0]
        assert http.get("/reports", headers={"Accept": "text/html"}).status_code == 302


def test_a_browser_that_never_signed_out_is_still_sent_to_sign_in(running_app: RunningApp):
    with running_app.http() as http:
        page = http.get("/reports", headers={"Accept": "text/html"})
        assert page.status_code == 302
        assert page.headers["location"] == "/oauth/login?next=%2Freports"


def test_the_signed_out_page_sends_a_signed_in_browser_to_the_app(running_app: RunningApp):
    """A forged return cannot make a signed-in browser say it signed out."""
    with running_app.http() as http:
        _log_in(http)
        answer = http.get("/oauth/signed-out?state=forged")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert http.get("/oauth/status").json()["authenticated"] is True


def test_local_logout_lands_on_the_signed_out_page(idp):
    with serve_app(idp, provider_logout=False) as running, running.http() as http:
        _log_in(http)
        done = _log_out(http)
        assert done.status_code == 303
        assert done.headers["location"] == "/oauth/signed-out?next=%2F"
        assert "You signed out" in http.get(done.headers["location"]).text
