"""Dash callbacks cannot be reached around the login, whatever their inputs claim.

dash-auth decides whether a callback is public from the page path its inputs
carry, so a request whose ``inputs`` name a public pathname runs a protected
callback without a session.  Here the guard looks at the session only, and
``require_groups`` checks the user on every call.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from dash import Dash
from dash import Input
from dash import Output
from dash import dcc
from dash import html

from dash_oauth_otel.adapter import DashOAuth
from dash_oauth_otel.adapter import current_user
from dash_oauth_otel.adapter import require_groups
from tests.security.support import serve

SECRET_TEXT = "quarterly figures"
ADMIN_TEXT = "admin console"


def routed_app(client: Any, **options: Any) -> Dash:
    """A multi-page app: ``/public`` is public, the rest is behind login."""
    app = Dash(__name__)
    DashOAuth(app, client, public_routes=["/public"], **options)
    app.layout = html.Div(
        [dcc.Location(id="url"), html.Div(id="page"), html.Button(id="admin"), html.Pre(id="out")]
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def render(pathname: str) -> str:
        if pathname == "/public":
            return "welcome"
        user = current_user()
        return f"{SECRET_TEXT} for {user.sub if user else 'nobody'}"

    @app.callback(Output("out", "children"), Input("admin", "n_clicks"))
    @require_groups(["admins"])
    def admin(_clicks: Any) -> str:
        return ADMIN_TEXT

    return app


def _render(pathname: str) -> dict[str, Any]:
    return {
        "output": "page.children",
        "outputs": {"id": "page", "property": "children"},
        "inputs": [{"id": "url", "property": "pathname", "value": pathname}],
        "changedPropIds": ["url.pathname"],
        "state": [],
    }


ADMIN_CALL = {
    "output": "out.children",
    "outputs": {"id": "out", "property": "children"},
    "inputs": [{"id": "admin", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["admin.n_clicks"],
    "state": [],
}


@pytest.fixture(scope="module")
def app(idp_server):
    with serve(idp_server, factory=routed_app) as running:
        yield running


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Referer": "{origin}/public"},
        {"Referer": "{origin}/public", "X-Original-URL": "/public", "X-Rewrite-URL": "/public"},
    ],
    ids=["plain", "public-referer", "rewrite-headers"],
)
def test_callback_claiming_a_public_pathname_gets_no_output(app, exposure, telemetry, headers):
    """The routing-callback bypass: a protected callback called with ``pathname=/public``.

    Without a session the guard answers every Dash callback with the
    ``sideUpdate`` that sends the page to sign in; the callback never runs.
    """
    http = exposure.browser(app)
    sent = {k: v.format(origin=app.origin) for k, v in headers.items()}
    for pathname in ("/public", "/reports"):
        response = http.post("/_dash-update-component", json=_render(pathname), headers=sent)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"multi", "response", "sideUpdate"}
        assert body["response"] == {}
        href = body["sideUpdate"]["_dash_oauth_location"]["href"]
        assert urlsplit(href).path == "/oauth/login"
        assert SECRET_TEXT not in response.text and "welcome" not in response.text
    # The protected callback never ran, not even for the public path.
    denied = http.post("/_dash-update-component", json=ADMIN_CALL, headers=sent)
    assert ADMIN_TEXT not in denied.text and "sideUpdate" in denied.json()
    assert telemetry.events("audit_session_started") == []


def test_the_same_callback_runs_with_a_session(app, exposure):
    """Control: the request shape above is a valid Dash call once signed in."""
    http = exposure.browser(app)
    exposure.sign_in(http)
    response = http.post("/_dash-update-component", json=_render("/reports"))
    assert response.status_code == 200
    assert response.json()["response"]["page"]["children"] == f"{SECRET_TEXT} for alice"


def test_group_callback_refused_outside_the_group(app, exposure, telemetry):
    """``require_groups(["admins"])``: Bob (analysts) gets 403, Alice (admins) the output.

    Bob is signed in, so the guard lets the request through; the check inside
    the callback refuses it, and the refusal is audited.
    """
    bob = exposure.browser(app)
    exposure.sign_in(bob, username="bob")
    refused = bob.post("/_dash-update-component", json=ADMIN_CALL)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert ADMIN_TEXT not in refused.text
    # Whatever page the request claims to come from.
    public = bob.post(
        "/_dash-update-component",
        json=ADMIN_CALL,
        headers={"Referer": f"{app.origin}/public", "X-Original-URL": "/public"},
    )
    assert public.status_code == 403

    alice = exposure.browser(app)
    exposure.sign_in(alice)
    allowed = alice.post("/_dash-update-component", json=ADMIN_CALL)
    assert allowed.status_code == 200
    assert allowed.json()["response"]["out"]["children"] == ADMIN_TEXT

    # Each refusal is a security event: audited, with who was refused (as a digest).
    refusals = [e for e in telemetry.audit if e.get("reason") == "group_required"]
    assert len(refusals) == 2, "a refused group check leaves no audit event"
    assert all(e.get("sub_digest") for e in refusals)
