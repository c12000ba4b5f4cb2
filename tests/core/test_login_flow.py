"""The authorization code flow against the real test provider: happy paths."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from opentelemetry.trace import SpanKind
from opentelemetry.trace import StatusCode

from dash_oauth_otel.core import complete_callback
from dash_oauth_otel.core import handle_callback
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from tests.idp.harness import login


@pytest.mark.parametrize("client_id", ["conf-basic", "conf-post", "public"])
def test_full_code_flow(make_client, browser_token, telemetry, client_id):
    client = make_client(client_id)
    request = prepare_call(client, browser_token, app_data={"return_to": "/reports"})
    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert "openid" in query["scope"][0].split()
    assert "nonce" in query

    result = login(request.url, username="alice")
    token, app_data = complete_callback(client, result.params, browser_token)

    assert app_data == {"return_to": "/reports"}
    assert token.subject == "alice"
    assert token.id_token_validated
    assert token.id_token_claims["aud"] == client.client_id
    assert token.refresh_token
    assert token.userinfo["groups"] == ["admins", "analysts"]
    assert token.expires_in() > 0
    assert "alice" in token.claims.get("email", "alice")

    # One correlation id from redirect to login success.
    types = telemetry.event_types()
    for expected in (
        "audit_redirect_issued",
        "audit_callback_received",
        "audit_callback_validation_success",
        "audit_token_exchange",
        "audit_userinfo",
        "audit_login_success",
    ):
        assert expected in types
    trace_ids = {e["trace_id"] for e in telemetry.audit}
    assert trace_ids == {request.trace_id}


def test_login_is_one_trace(make_client, browser_token, telemetry):
    client = make_client()
    request = prepare_call(client, browser_token)
    handle_callback(client, login(request.url).params, browser_token)

    login_span = telemetry.span(spans.LOGIN_REQUEST)
    callback = telemetry.span(spans.CALLBACK)
    assert login_span.parent is None
    assert callback.parent is not None
    assert callback.parent.span_id == login_span.context.span_id
    assert callback.context.trace_id == login_span.context.trace_id
    names = {s.name for s in telemetry.spans() if s.context.trace_id == login_span.context.trace_id}
    assert {
        spans.CALLBACK_VALIDATE,
        spans.TOKEN_EXCHANGE,
        spans.TOKEN_EXCHANGE_HTTP,
        spans.TOKEN_VERIFY,
        spans.USERINFO,
        spans.USERINFO_HTTP,
        spans.JWKS_HTTP,
    } <= names
    phases = {s.attributes[attr.OAUTH_PHASE] for s in telemetry.spans(spans.CALLBACK_VALIDATE)}
    assert {
        "callback.state_payload",
        "callback.state_store_lookup",
        "callback.browser_token_validation",
        "callback.state_store_consume",
        "callback.pkce_verifier_validation",
        "callback.nonce_validation",
    } <= phases
    http = telemetry.span(spans.TOKEN_EXCHANGE_HTTP)
    assert http.kind is SpanKind.CLIENT
    assert http.attributes[attr.HTTP_REQUEST_METHOD] == "POST"
    assert http.attributes[attr.HTTP_RESPONSE_STATUS_CODE] == 200
    assert "?" not in http.attributes[attr.URL_FULL]
    for s in telemetry.spans():
        assert s.status.status_code is StatusCode.OK, s.name
        if s.context.trace_id == login_span.context.trace_id:
            assert s.attributes[attr.TRACE_ID] == request.trace_id


@pytest.mark.parametrize(("client_id", "use_par"), [("par-required", True), ("conf-basic", None)])
def test_pushed_authorization_request(make_client, browser_token, telemetry, client_id, use_par):
    # PAR is used when the provider requires it, and by default whenever it offers it.
    client = make_client(client_id, use_par=use_par)
    assert client.uses_par
    request = prepare_call(client, browser_token)
    query = parse_qs(urlsplit(request.url).query)
    # RFC 9126 §4: the browser sees only the client id and the request URI.
    assert set(query) == {"client_id", "request_uri"}
    assert request.par_used
    token = handle_callback(client, login(request.url).params, browser_token)
    assert token.subject == "alice"
    assert telemetry.span(spans.LOGIN_PAR_HTTP).attributes[attr.HTTP_RESPONSE_STATUS_CODE] == 201


def test_form_post_response_mode(make_client, browser_token):
    client = make_client(response_mode="form_post")
    request = prepare_call(client, browser_token)
    result = login(request.url)
    assert result.response_mode == "form_post"
    token = handle_callback(client, result.fields, browser_token)
    assert token.subject == "alice"


def test_max_age_requests_and_checks_auth_time(make_client, browser_token):
    client = make_client(max_age=600)
    request = prepare_call(client, browser_token)
    assert parse_qs(urlsplit(request.url).query)["max_age"] == ["600"]
    token = handle_callback(client, login(request.url).params, browser_token)
    assert isinstance(token.id_token_claims["auth_time"], int)


def test_secrets_never_exported(make_client, browser_token, telemetry):
    client = make_client()
    request = prepare_call(client, browser_token)
    result = login(request.url)
    token = handle_callback(client, result.params, browser_token)
    exported = telemetry.exported_text()
    secrets = [
        token.access_token,
        token.refresh_token,
        token.id_token,
        result.params["code"],
        result.params["state"],
        browser_token,
        client.client_secret,
    ]
    for secret in secrets:
        assert secret and secret not in exported
    for text in (repr(token), str(token), repr(client)):
        for secret in secrets:
            assert secret not in text


def test_a_refused_pushed_request_leaves_no_login_state(make_client, browser_token, store):
    # The provider refuses the pushed request (a redirect URI it does not know):
    # the login cannot complete, so its one-time values are not left to expire.
    client = make_client("conf-basic", use_par=True, redirect_uri="http://127.0.0.1:9/unknown")
    with pytest.raises(DashOAuthError) as info:
        prepare_call(client, browser_token)
    assert info.value.phase == "login.par"
    assert list(store.scan("state:")) == []
