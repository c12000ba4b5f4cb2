"""The module's own API against Glewlwyd: discovery, code flow, PAR, userinfo, refresh, revoke.

Real HTTP to a real Glewlwyd; its login pages are driven in Chromium.
"""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from dash_oauth_otel.core import complete_callback
from dash_oauth_otel.core import get_userinfo
from dash_oauth_otel.core import introspect_token
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.core import refresh_token
from dash_oauth_otel.core import revoke_token
from dash_oauth_otel.errors import TokenEndpointError
from tests.glewlwyd.harness import CONF_BASIC
from tests.glewlwyd.harness import CONF_POST
from tests.glewlwyd.harness import USER_EMAIL
from tests.glewlwyd.harness import USER_GROUPS
from tests.glewlwyd.harness import USER_NAME
from tests.glewlwyd.harness import browser_login


def test_discovery(glewlwyd, gl_provider):
    assert gl_provider.issuer == glewlwyd.issuer
    assert gl_provider.is_oidc
    assert gl_provider.token_endpoint == glewlwyd.endpoint("token")
    assert gl_provider.pushed_authorization_request_endpoint == glewlwyd.endpoint(
        "pushed_authorization_request"
    )
    assert gl_provider.end_session_endpoint == glewlwyd.endpoint("end_session")
    # Glewlwyd sends iss in authorization responses without advertising it.
    assert not glewlwyd.metadata.get("authorization_response_iss_parameter_supported")


@pytest.mark.parametrize("registered", [CONF_BASIC, CONF_POST], ids=["basic", "post"])
def test_code_flow_with_pkce(gl_client, gl_context, browser_token, registered):
    client = gl_client(registered)
    request = prepare_call(client, browser_token, app_data={"return_to": "/r"})
    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert not request.par_used

    callback = browser_login(gl_context, request.url, client.redirect_uri)
    assert callback.params["iss"] == client.provider.issuer
    token, app_data = complete_callback(client, callback.params, browser_token)

    assert app_data == {"return_to": "/r"}
    assert token.id_token_validated
    assert token.id_token_claims["aud"] in (client.client_id, [client.client_id])
    # Glewlwyd's sub is an opaque identifier it generates per user.
    assert token.subject and token.subject == token.id_token_claims["sub"]
    assert token.refresh_token
    assert token.claims["name"] == USER_NAME
    assert token.claims["email"] == USER_EMAIL


def test_pushed_authorization_request(gl_client, gl_context, browser_token):
    client = gl_client(use_par=True)
    request = prepare_call(client, browser_token)
    assert request.par_used
    assert set(parse_qs(urlsplit(request.url).query)) == {"client_id", "request_uri"}
    callback = browser_login(gl_context, request.url, client.redirect_uri)
    token, _ = complete_callback(client, callback.params, browser_token)
    assert token.claims["name"] == USER_NAME


def test_userinfo_refresh_rotation_revoke_introspect(gl_client, gl_context, browser_token):
    client = gl_client(fetch_userinfo=False)
    request = prepare_call(client, browser_token)
    callback = browser_login(gl_context, request.url, client.redirect_uri)
    token, _ = complete_callback(client, callback.params, browser_token)

    info = get_userinfo(client, token)
    assert info["sub"] == token.subject
    assert info["name"] == USER_NAME
    assert info["email"] == USER_EMAIL
    assert sorted(info["groups"]) == sorted(USER_GROUPS)

    refreshed = refresh_token(client, token)
    assert refreshed.access_token != token.access_token
    assert refreshed.refresh_token and refreshed.refresh_token != token.refresh_token
    assert refreshed.subject == token.subject
    # Rotation: the old refresh token is refused from now on.
    with pytest.raises(TokenEndpointError) as refused:
        refresh_token(client, token)
    assert refused.value.status == 400

    assert introspect_token(client, refreshed, "access").active
    revoked = revoke_token(client, refreshed, "access")
    assert revoked.revoked, revoked
    after = introspect_token(client, refreshed, "access")
    assert after.status == "ok"
    assert not after.active
