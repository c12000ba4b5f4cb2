"""Refresh, revocation, introspection and userinfo against the real test provider."""

from __future__ import annotations

import pytest

from dash_oauth_otel.core import get_userinfo
from dash_oauth_otel.core import handle_callback
from dash_oauth_otel.core import introspect_token
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.core import refresh_token
from dash_oauth_otel.core import revoke_token
from dash_oauth_otel.errors import HTTPError
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from tests.idp.harness import login


@pytest.fixture
def logged_in(make_client, browser_token):
    client = make_client()
    request = prepare_call(client, browser_token)
    return client, handle_callback(client, login(request.url).params, browser_token)


def test_refresh_rotates_and_keeps_identity(logged_in, telemetry):
    client, token = logged_in
    refreshed = refresh_token(client, token)
    assert refreshed.access_token != token.access_token
    assert refreshed.refresh_token and refreshed.refresh_token != token.refresh_token
    assert refreshed.subject == token.subject == "alice"
    assert refreshed.id_token_validated
    assert refreshed.id_token_claims.get("auth_time") == token.id_token_claims.get("auth_time")
    event = telemetry.events("audit_token_refresh")[0]
    assert event["refresh_token_rotated"] is True
    http = telemetry.span(spans.TOKEN_EXCHANGE_HTTP)
    assert http.attributes[attr.OAUTH_PHASE] == "refresh"
    assert telemetry.span(spans.TOKEN_VERIFY).attributes[attr.OAUTH_PHASE] == "refresh.verify"

    # The rotated-out refresh token no longer works, and is never retried.
    telemetry.audit.clear()
    with pytest.raises(TokenEndpointError) as caught:
        refresh_token(client, token)
    assert caught.value.oauth_error == "invalid_grant"
    assert caught.value.phase == "refresh"
    assert caught.value.trace_id
    assert len(telemetry.spans(spans.TOKEN_EXCHANGE_HTTP)) == 2
    assert telemetry.events("http_error")[0]["oauth_error"] == "invalid_grant"


def test_several_refreshes_in_a_row(logged_in):
    client, token = logged_in
    for _ in range(3):
        token = refresh_token(client, token)
    assert token.subject == "alice"


def test_revoke_then_introspect_inactive(logged_in, telemetry):
    client, token = logged_in
    assert introspect_token(client, token, "access").active is True
    assert introspect_token(client, token, "refresh").active is True

    result = revoke_token(client, token, "refresh")
    assert (result.supported, result.revoked, result.status) == (True, True, "ok")
    # Revoking the refresh token ends the grant, the access token with it.
    after = introspect_token(client, token, "refresh")
    assert (after.supported, after.active, after.status) == (True, False, "ok")
    assert introspect_token(client, token, "access").active is False
    revoke_span = telemetry.span(spans.TOKEN_REVOKE)
    assert revoke_span.attributes[attr.OAUTH_REVOKED] is True
    assert revoke_span.attributes[attr.OAUTH_TOKEN_WHICH] == "refresh"
    events = telemetry.events("audit_token_introspection")
    assert [e["active"] for e in events] == [True, True, False, False]


def test_revoke_access_token(logged_in):
    client, token = logged_in
    assert revoke_token(client, token, "access").revoked
    assert introspect_token(client, token, "access").active is False


def test_userinfo(logged_in):
    client, token = logged_in
    info = get_userinfo(client, token)
    assert info["sub"] == "alice"
    assert info["groups"] == ["admins", "analysts"]


def test_userinfo_503_is_a_clear_error(logged_in, idp, telemetry):
    client, token = logged_in
    idp.fail_userinfo()
    with pytest.raises(HTTPError) as caught:
        get_userinfo(client, token)
    assert caught.value.status == 503
    assert telemetry.events("audit_userinfo")[-1]["status"] == "http_503"
    assert get_userinfo(client, token)["sub"] == "alice"  # recovers


def test_revocation_unsupported_is_reported_not_raised(make_client, provider, browser_token):
    from dataclasses import replace

    bare = replace(provider, revocation_endpoint=None, introspection_endpoint=None)
    client = make_client(provider=bare)
    request = prepare_call(client, browser_token)
    token = handle_callback(client, login(request.url).params, browser_token)
    assert revoke_token(client, token).status == "revocation_unsupported"
    assert introspect_token(client, token).status == "introspection_unsupported"
    bare.close()
