"""OpenID RP-Initiated Logout 1.0, as the Foundation's RP tests check it, against the real provider.

Named after the conformance modules (``reference/openid-rp-conformance.md``,
"Logout profiles"): ``oidcc-client-test-rp-init-logout`` (the RP sends the
browser to ``end_session_endpoint`` with ``id_token_hint``, ``client_id``,
``post_logout_redirect_uri`` and a ``state``, and accepts the return),
``-other-state`` (the return carries another ``state``: handled without
trusting it) and ``-no-state`` (no ``state`` returned).  The module POSTs the
request, which the specification allows, so the ID token is in no URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.idp.harness import login
from tests.idp.harness import logout

FIELDS = {"id_token_hint", "client_id", "post_logout_redirect_uri", "state"}


@dataclass
class Form:
    action: str = ""
    method: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get")))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1].fields[values["name"]] = values.get("value", "")


def forms(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def _log_in(running: RunningApp, http: httpx.Client) -> str:
    """Sign in through the provider; return the session's ID token."""
    first = http.get("/oauth/login?next=/")
    assert first.status_code == 302
    landed = login(first.headers["location"], http_client=http).deliver(http)
    assert landed.status_code == 303, landed.text
    record = running.module.sessions.load(session_cookie(http.cookies))
    assert record is not None and record.token.id_token
    return str(record.token.id_token)


@dataclass
class Logout:
    id_token: str
    response: httpx.Response
    form: Form


def _log_out(running: RunningApp, http: httpx.Client) -> Logout:
    """Sign in, then sign out at the app: the answer is the end-session form."""
    id_token = _log_in(running, http)
    csrf = http.get("/oauth/status").json()["csrf_token"]
    response = http.post("/oauth/logout", data={"csrf_token": csrf})
    (form,) = forms(response.text)
    return Logout(id_token, response, form)


def _asks_for_credentials(running: RunningApp, http: httpx.Client) -> bool:
    """A new login shows the provider's sign-in form (its single sign-on session is gone)."""
    start = http.get("/oauth/login?next=/")
    page = http.get(start.headers["location"], follow_redirects=True)
    at_provider = str(page.url).startswith(running.client.provider.issuer)
    return at_provider and 'name="login"' in page.text


def _signed_out_page(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert "You signed out" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers  # nothing ended or started by the return


def test_oidcc_client_test_rp_init_logout(running_app, telemetry):
    running = running_app
    with running.http() as http:
        done = _log_out(running, http)
        # An auto-submitted POST form to the end-session endpoint, cached nowhere.
        assert done.response.status_code == 200
        assert done.response.headers["cache-control"] == "no-store"
        assert "location" not in done.response.headers
        assert done.form.method == "post"
        assert done.form.action == running.client.provider.end_session_endpoint
        assert set(done.form.fields) == FIELDS
        assert done.form.fields["id_token_hint"] == done.id_token
        assert done.form.fields["client_id"] == running.client.client_id
        assert done.form.fields["post_logout_redirect_uri"] == running.origin + "/oauth/signed-out"
        assert len(done.form.fields["state"]) >= 32
        assert "document.getElementById('dash-oauth-end-session').submit()" in done.response.text
        # The app's session is over and the browser is marked signed out.
        assert http.get("/oauth/status").json()["authenticated"] is False
        assert http.cookies.get(running.module.cookies.signed_out_name) == "1"

        # The provider accepts the POST, asks "sign out?", and returns with the state.
        result = logout(done.form.action, http_client=http, form=done.form.fields)
        assert result.redirect_url is not None
        assert result.redirect_url.split("?")[0] == running.origin + "/oauth/signed-out"
        assert result.params == {"state": done.form.fields["state"]}
        assert done.id_token not in result.redirect_url
        _signed_out_page(http.get(result.redirect_url))
        (event,) = telemetry.events("audit_logout_return")
        assert event["state_match"] is True and event["reason"] == "state_matched"
        # The state is single-use: the same return again is no longer a match.
        http.get(result.redirect_url)
        assert telemetry.events("audit_logout_return")[-1]["state_match"] is False

        # The provider's session ended: a new login asks for credentials again.
        assert _asks_for_credentials(running, http)
    assert [s.name for s in telemetry.spans("dash_oauth_otel.logout.return")]


def test_oidcc_client_test_rp_init_logout_other_state(running_app, telemetry):
    running = running_app
    with running.http() as http:
        done = _log_out(running, http)
        result = logout(done.form.action, http_client=http, form=done.form.fields)
        assert result.redirect_url is not None
        # The provider comes back with another state, and more in the query.
        returned = http.get(
            "/oauth/signed-out",
            params={
                "state": "another-state-" + "x" * 30,
                "next": "https://evil.example/",
                "post_logout_redirect_uri": "https://evil.example/",
            },
        )
        _signed_out_page(returned)
        assert "evil.example" not in returned.text
        (event,) = telemetry.events("audit_logout_return")
        assert event["state_match"] is False and event["reason"] == "state_unknown"
        assert "another-state" not in str(event)
        assert http.get("/oauth/status").json()["authenticated"] is False
        assert _asks_for_credentials(running, http)


def test_oidcc_client_test_rp_init_logout_no_state(running_app, telemetry):
    running = running_app
    with running.http() as http:
        done = _log_out(running, http)
        result = logout(done.form.action, http_client=http, form=done.form.fields)
        assert result.redirect_url is not None
        returned = http.get(urlsplit(result.redirect_url).path)  # the return without its state
        _signed_out_page(returned)
        (event,) = telemetry.events("audit_logout_return")
        assert event["state_match"] is False and event["reason"] == "state_missing"
        assert http.get("/oauth/status").json()["authenticated"] is False
        assert _asks_for_credentials(running, http)


def test_the_state_is_bound_to_the_browser(running_app, telemetry):
    """The right state arriving in another browser is not a match."""
    running = running_app
    with running.http() as http, running.http() as other:
        done = _log_out(running, http)
        result = logout(done.form.action, http_client=http, form=done.form.fields)
        assert result.redirect_url is not None
        _signed_out_page(other.get(result.redirect_url))
    (event,) = telemetry.events("audit_logout_return")
    assert event["state_match"] is False and event["reason"] == "browser_mismatch"


def test_without_the_hint_option_the_post_carries_client_id_only(idp):
    with serve_app(idp, logout_id_token_hint=False) as running, running.http() as http:
        done = _log_out(running, http)
        assert set(done.form.fields) == FIELDS - {"id_token_hint"}
        assert done.id_token not in done.response.text
        result = logout(done.form.action, http_client=http, form=done.form.fields)
        assert result.params == {"state": done.form.fields["state"]}
