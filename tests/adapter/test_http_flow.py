"""The module over plain HTTP against the real provider (the browser suite covers the rest)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.adapter.conftest import app_and_browser
from tests.adapter.conftest import serve_app
from tests.idp.harness import login


def _log_in(running, http, next_path="/"):
    first = http.get(f"/oauth/login?next={next_path}")
    assert first.status_code == 302
    assert urlsplit(first.headers["location"]).netloc != urlsplit(running.url).netloc
    result = login(first.headers["location"], http_client=http)
    return result.deliver(http)


def test_login_sets_a_session_and_returns_to_the_page(running_app, telemetry):
    with running_app.http() as http:
        page = http.get("/")
        assert page.status_code == 302
        assert "/oauth/login?next=%2F" in page.headers["location"]
        landed = _log_in(running_app, http, "/reports?x=1")
        assert landed.status_code == 303
        assert landed.headers["location"] == "/reports?x=1"
        assert landed.headers["cache-control"] == "no-store"
        cookie = landed.headers["set-cookie"]
        assert "dash_oauth_session_" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        index = http.get("/")
        assert index.status_code == 200
        status = http.get("/oauth/status").json()
        assert status["authenticated"] is True
        assert status["user"]["sub"] == "alice"
        assert "access_token" not in str(status)
    assert "audit_session_started" in telemetry.event_types()


def test_dash_callback_without_session_gets_side_update(running_app):
    with running_app.http() as http:
        response = http.post(
            "/_dash-update-component",
            json={"output": "answer.children", "inputs": [], "changedPropIds": []},
            headers={"Referer": running_app.url + "/reports"},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["sideUpdate"]["_dash_oauth_location"]["href"] == "/oauth/login?next=%2Freports"


def test_layout_and_api_refused_without_session(running_app):
    with running_app.http() as http:
        assert http.get("/_dash-layout").status_code == 401
        assert http.get("/_dash-dependencies").status_code == 401
        assert http.get("/_favicon.ico").status_code in (200, 404)


def test_logout_requires_csrf_and_revokes(running_app, telemetry):
    with running_app.http() as http:
        _log_in(running_app, http)
        status = http.get("/oauth/status").json()
        refused = http.post("/oauth/logout", data={"csrf_token": "wrong"})
        assert refused.status_code == 403
        assert http.get("/oauth/status").json()["authenticated"] is True
        cross = http.post(
            "/oauth/logout",
            data={"csrf_token": status["csrf_token"]},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        done = http.post("/oauth/logout", data={"csrf_token": status["csrf_token"]})
        # The provider's end-session request is a POST form (see test_rp_initiated_logout.py).
        assert done.status_code == 200 and "location" not in done.headers
        assert f'action="{running_app.client.provider.end_session_endpoint}"' in done.text
        assert http.get("/oauth/status").json()["authenticated"] is False
    revocations = telemetry.events("audit_token_revocation")
    assert [e["which"] for e in revocations] == ["refresh", "access"]
    assert all(e["revoked"] for e in revocations)


def test_path_prefix(idp):
    with serve_app(idp, prefix="/app/") as running, running.http() as http:
        first = http.get("/app/")
        assert first.status_code == 302
        assert first.headers["location"].startswith("/app/oauth/login?next=%2Fapp%2F")
        result = login(http.get(first.headers["location"]).headers["location"], http_client=http)
        landed = result.deliver(http)
        assert landed.headers["location"] == "/app/"
        assert http.get("/app/oauth/status").json()["authenticated"] is True


def test_form_post_bridge(idp, telemetry):
    with serve_app(idp, response_mode="form_post") as running, running.http() as http:
        first = http.get("/oauth/login?next=/x")
        result = login(first.headers["location"], http_client=http)
        assert result.response_mode == "form_post"
        bridged = result.deliver(http)
        assert bridged.status_code == 303
        handle_url = bridged.headers["location"]
        assert handle_url.startswith("/oauth/callback?fp=")
        assert "code" not in handle_url and "state" not in handle_url
        landed = http.get(handle_url)
        assert landed.status_code == 303 and landed.headers["location"] == "/x"
        again = http.get(handle_url)
        assert again.status_code == 400  # the handle is single-use
        assert "unknown_form_post_handle" in str(telemetry.events("audit_callback_query_rejected"))


def test_login_page_when_auto_redirect_is_off(idp):
    options = {"auto_redirect": False, "public_routes": ["/health", "/docs/"]}
    with app_and_browser(idp, **options) as (_running, http):
        page = http.get("/reports", headers={"Accept": "text/html"})
        assert page.status_code == 401
        assert 'href="/oauth/login?next=%2Freports"' in page.text
        assert page.headers["cache-control"] == "no-store"
        # Public routes are served without a session (here Dash's index).
        assert http.get("/health").status_code == 200
        assert http.get("/docs/intro").status_code == 200
        assert http.get("/healthz", headers={"Accept": "text/html"}).status_code == 401


def test_return_to_is_same_origin_only(running_app):
    with running_app.http() as http:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/%5Cevil"):
            first = http.get("/oauth/login", params={"next": target})
            landed = login(first.headers["location"], http_client=http).deliver(http)
            assert landed.headers["location"] == "/", target
            http.cookies.clear()


def test_a_failed_login_offers_to_try_again_for_the_same_page(running_app):
    with running_app.http() as http:
        first = http.get("/oauth/login", params={"next": "/reports?x=1"})
        result = login(first.headers["location"], http_client=http)
        # The provider's answer with its code swapped: the exchange fails, the
        # state is this client's own, so the retry returns to /reports?x=1.
        failed = http.get("/oauth/callback", params={**result.params, "code": "not-a-code"})
        assert failed.status_code in (400, 502)
        assert 'id=dash-oauth-retry href="/oauth/login?next=%2Freports%3Fx%3D1"' in failed.text
        # A state that does not open with the app's key names no page.
        forged = {**result.params, "state": "A" * len(result.params["state"])}
        refused = http.get("/oauth/callback", params=forged)
        assert refused.status_code == 400
        assert 'id=dash-oauth-retry href="/oauth/login"' in refused.text
