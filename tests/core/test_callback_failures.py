"""Every way a callback must fail, against the real test provider.

Each test drives the failure, asserts the typed error and reason, the audit
event, and what was (or was not) consumed: a rejected forgery must leave the
rightful login usable.
"""

from __future__ import annotations

import base64
import secrets
import time

import pytest

from dash_oauth_otel.core import handle_callback
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.errors import AuthorizationError
from dash_oauth_otel.errors import CallbackIssuerError
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import NonceError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.errors import UserinfoError
from dash_oauth_otel.telemetry import spans
from tests.idp.harness import login


def _start(client, browser_token):
    request = prepare_call(client, browser_token)
    return login(request.url).params


def _flip_bit(value: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("what", "error", "reason"),
    [
        ("nonce", NonceError, "nonce_mismatch"),
        ("aud", IDTokenError, "aud_mismatch"),
        ("iss", IDTokenError, "iss_mismatch"),
        ("exp", IDTokenError, "expired"),
        ("signature", IDTokenError, "signature_invalid"),
    ],
)
def test_tampered_id_token_rejected(
    idp, make_client, browser_token, telemetry, what, error, reason
):
    client = make_client()
    params = _start(client, browser_token)
    idp.tamper_next_id_token(what)
    with pytest.raises(error) as caught:
        handle_callback(client, params, browser_token)
    assert caught.value.reason == reason
    assert caught.value.phase == "callback.verify"
    assert caught.value.trace_id == telemetry.events("audit_redirect_issued")[0]["trace_id"]
    assert "audit_login_success" not in telemetry.event_types()
    callback = telemetry.span(spans.CALLBACK)
    assert callback.attributes["error.type"] == error.__qualname__


def test_tampered_sub_caught_by_userinfo_binding(idp, make_client, browser_token, telemetry):
    client = make_client()
    params = _start(client, browser_token)
    idp.tamper_next_id_token("sub")
    with pytest.raises(UserinfoError) as caught:
        handle_callback(client, params, browser_token)
    assert caught.value.reason == "userinfo_sub_mismatch"
    assert telemetry.events("audit_userinfo")[-1]["status"] == "userinfo_sub_mismatch"


def test_replayed_callback_rejected(make_client, browser_token, telemetry):
    client = make_client()
    params = _start(client, browser_token)
    handle_callback(client, params, browser_token)
    with pytest.raises(StateError) as caught:
        handle_callback(client, params, browser_token)
    assert caught.value.reason == "state_unknown_or_used"
    assert telemetry.events("audit_state_store_lookup_failed")
    assert len(telemetry.spans(spans.TOKEN_EXCHANGE_HTTP)) == 1  # the code was not re-sent


def test_expired_state_rejected(make_client, browser_token, telemetry):
    # A login started ten minutes ago (the clock is the only difference).
    past = make_client(clock=lambda: time.time() - 600)
    params = _start(past, browser_token)
    client = make_client()
    with pytest.raises(StateError) as caught:
        handle_callback(client, params, browser_token)
    assert caught.value.reason == "expired"
    failed = telemetry.events("audit_callback_validation_failed")[0]
    assert failed["phase"] == "callback.state_payload"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: _flip_bit(s, 20), "gcm_auth_failed"),
        (lambda s: _flip_bit(s, 0), "token_version_mismatch"),
        (lambda s: s[: len(s) // 8 * 4], "gcm_auth_failed"),
        (lambda s: s[:10], "token_too_short"),
        (lambda s: "A" * len(s), "token_version_mismatch"),
        (lambda s: "xxxx" + s, "token_version_mismatch"),
        (lambda s: s + "AAAA", "gcm_auth_failed"),
        (lambda s: s + "=", "token_b64_invalid"),
        (lambda s: "y" * 9000, "token_too_large"),
    ],
    ids=[
        "bit-flip",
        "version",
        "truncated",
        "stub",
        "garbage",
        "prefixed",
        "suffixed",
        "padding",
        "huge",
    ],
)
def test_tampered_state_rejected_and_rightful_login_survives(
    make_client, browser_token, telemetry, mutate, reason
):
    client = make_client()
    params = _start(client, browser_token)
    forged = {**params, "state": mutate(params["state"])}
    if len(forged["state"]) > 8192:
        with pytest.raises(InputError) as too_big:
            handle_callback(client, forged, browser_token)
        assert too_big.value.reason == "param_too_large"
    else:
        with pytest.raises(StateError) as caught:
            handle_callback(client, forged, browser_token)
        assert caught.value.reason == reason
        parse = telemetry.events("audit_state_parse_failure")[0]
        assert parse["reason"] == reason
    assert handle_callback(client, params, browser_token).subject == "alice"


def test_state_sealed_under_another_key_rejected(make_client, browser_token):
    other = make_client(state_key="another-key-RVdD53X83RZJzzzzgEOzdmenCkhv")
    params = _start(other, browser_token)
    with pytest.raises(StateError) as caught:
        handle_callback(make_client(), params, browser_token)
    assert caught.value.reason == "gcm_auth_failed"


def test_empty_state_rejected(make_client, browser_token):
    with pytest.raises(InputError) as caught:
        handle_callback(make_client(), {"code": "abc", "state": ""}, browser_token)
    assert caught.value.reason == "state_missing"


def test_cross_client_state_rejected(make_client, browser_token):
    # Same key and store, other client: the state is sealed with the client id
    # and issuer as associated data, so it does not even open.
    params = _start(make_client("conf-post"), browser_token)
    with pytest.raises(StateError) as caught:
        handle_callback(make_client("conf-basic"), params, browser_token)
    assert caught.value.reason == "gcm_auth_failed"


def test_other_browser_rejected_without_consuming(make_client, browser_token, telemetry):
    client = make_client()
    params = _start(client, browser_token)
    attacker = secrets.token_urlsafe(32)
    with pytest.raises(StateError) as caught:
        handle_callback(client, params, attacker)
    assert caught.value.reason == "browser_binding_mismatch"
    assert telemetry.events("audit_callback_validation_failed")[0]["phase"] == (
        "callback.browser_token_validation"
    )
    # The rightful browser still completes its own login afterwards.
    assert handle_callback(client, params, browser_token).subject == "alice"


@pytest.mark.parametrize("iss", [None, "http://127.0.0.1:1", "https://evil.example"])
def test_missing_or_wrong_iss_rejected_before_state_use(make_client, browser_token, telemetry, iss):
    client = make_client()
    assert client.enforces_issuer_parameter
    params = _start(client, browser_token)
    forged = {k: v for k, v in params.items() if k != "iss"}
    if iss is not None:
        forged["iss"] = iss
    with pytest.raises(CallbackIssuerError) as caught:
        handle_callback(client, forged, browser_token)
    expected = "issuer_missing" if iss is None else "issuer_mismatch"
    assert caught.value.error == expected
    assert telemetry.event_types()[-1] == (
        "audit_callback_iss_missing" if iss is None else "audit_callback_iss_mismatch"
    )
    assert "audit_callback_received" not in telemetry.event_types()
    assert handle_callback(client, params, browser_token).subject == "alice"


@pytest.mark.parametrize("retire_old", [False, True])
def test_unknown_kid_after_rotation_accepted_after_one_refetch(
    idp, make_client, browser_token, telemetry, retire_old
):
    client = make_client()
    handle_callback(client, _start(client, browser_token), browser_token)
    assert len(telemetry.spans(spans.JWKS_HTTP)) == 1
    idp.rotate_keys(retire_old=retire_old)
    token = handle_callback(client, _start(client, browser_token), browser_token)
    assert token.id_token_validated
    assert len(telemetry.spans(spans.JWKS_HTTP)) == 2
    # The new key is cached: further logins fetch nothing.
    handle_callback(client, _start(client, browser_token), browser_token)
    assert len(telemetry.spans(spans.JWKS_HTTP)) == 2


def test_token_endpoint_500_is_clear_and_not_retried(idp, make_client, browser_token, telemetry):
    client = make_client()
    params = _start(client, browser_token)
    idp.fail_token_endpoint(times=1)
    with pytest.raises(TokenEndpointError) as caught:
        handle_callback(client, params, browser_token)
    assert caught.value.status == 500
    assert caught.value.phase == "token.exchange"
    assert "server_error" in str(caught.value)
    assert len(telemetry.spans(spans.TOKEN_EXCHANGE_HTTP)) == 1
    assert telemetry.events("audit_token_exchange_error")[0]["error_class"] == "TokenEndpointError"
    http_error = telemetry.events("http_error")[0]
    assert http_error["status"] == "http_500" and "body_digest" in http_error
    # The state was consumed: the same callback cannot be replayed.
    with pytest.raises(StateError):
        handle_callback(client, params, browser_token)


def test_provider_error_shown_only_after_validation(make_client, browser_token, telemetry, idp):
    client = make_client()
    request = prepare_call(client, browser_token)
    state = request.url.split("state=")[1].split("&")[0]
    from urllib.parse import unquote

    error_callback = {"error": "access_denied", "state": unquote(state), "iss": idp.issuer}
    # From another browser: the error is not shown, a binding failure is.
    with pytest.raises(StateError):
        handle_callback(client, error_callback, secrets.token_urlsafe(32))
    with pytest.raises(AuthorizationError) as caught:
        handle_callback(
            client, {**error_callback, "error_description": "User\x00 said no"}, browser_token
        )
    assert caught.value.error == "access_denied"
    assert caught.value.description == "User said no"
    # An unsolicited error (no valid state) is a state error, never shown as the provider's.
    with pytest.raises(StateError):
        handle_callback(client, error_callback, browser_token)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"code": ["a", "b"], "state": "s"}, "duplicate_param"),
        ({"state": "s"}, "callback_shape"),
        ({"code": "a", "error": "x", "state": "s"}, "callback_shape"),
        ({"code": "a" * 5000, "state": "s"}, "param_too_large"),
        ({f"k{i}": "v" for i in range(20)}, "too_many_params"),
    ],
)
def test_malformed_callback_rejected(make_client, browser_token, telemetry, query, reason):
    with pytest.raises(InputError) as caught:
        handle_callback(make_client(), query, browser_token)
    assert caught.value.reason == reason
    assert telemetry.events("audit_callback_query_rejected")[0]["reason"] == reason
