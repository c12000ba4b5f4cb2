"""Tests of dash_oauth_otel.core.token_endpoint: client auth, error and success parsing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import unquote_plus

import httpx
import pytest

from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.http import HttpClient
from dash_oauth_otel.core.http import HttpResponse
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.core.token_endpoint import authenticated_post
from dash_oauth_otel.core.token_endpoint import client_auth
from dash_oauth_otel.core.token_endpoint import parse_token_response
from dash_oauth_otel.core.token_endpoint import raise_for_error
from dash_oauth_otel.core.token_endpoint import safe_oauth_error
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.telemetry import spans

BASE = "https://idp.example"
TOKEN_URL = f"{BASE}/token"
NOW = 1_700_000_000.0


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"access_token": "a", "token_type": "Bearer"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_client(recorder: Recorder) -> Iterator[Callable[..., OAuthClient]]:
    made: list[OAuthProvider] = []

    def make(**overrides: Any) -> OAuthClient:
        headers = overrides.pop("extra_token_headers", {})
        provider = OAuthProvider(
            name="idp",
            issuer=BASE,
            authorization_endpoint=f"{BASE}/authorize",
            token_endpoint=TOKEN_URL,
            jwks_uri=f"{BASE}/jwks",
            extra_token_headers=headers,
            http_client=HttpClient(transport=httpx.MockTransport(recorder)),
        )
        made.append(provider)
        options: dict[str, Any] = {
            "provider": provider,
            "client_id": "app",
            "client_secret": "s3cret",
            "redirect_uri": "https://app.example/cb",
            "state_key": "token-endpoint-key-Rw6Nq3Zx8Lm2Vt9Bk5Yc7Pd4Hf",
        }
        options.update(overrides)
        return OAuthClient(**options)

    yield make
    for provider in made:
        provider.close()


def basic_pair(headers: Mapping[str, str]) -> tuple[str, str]:
    scheme, _, encoded = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, sep, password = base64.b64decode(encoded).decode("ascii").partition(":")
    assert sep == ":"
    return user, password


def response(body: object, status: int = 200, raw: bytes | None = None) -> HttpResponse:
    content = raw if raw is not None else json.dumps(body).encode()
    return HttpResponse(
        status=status,
        headers={"content-type": "application/json"},
        content=content,
        url=TOKEN_URL,
    )


# -- client_auth ----------------------------------------------------------------


def test_basic_puts_credentials_in_header_only(make_client) -> None:
    form = {"grant_type": "authorization_code"}
    headers = client_auth(make_client(), form)
    assert basic_pair(headers) == ("app", "s3cret")
    assert headers["Accept"] == "application/json"
    assert form == {"grant_type": "authorization_code"}


@pytest.mark.parametrize(
    ("client_id", "secret", "encoded_pair"),
    [
        # RFC 6749 Appendix B example value: " %&+£€".
        ("app", " %&+£€", "app:+%25%26%2B%C2%A3%E2%82%AC"),
        ("app", "a:b", "app:a%3Ab"),
        ("my:app", "pw", "my%3Aapp:pw"),
        ("app", "plus+and space", "app:plus%2Band+space"),
        ("app", "slash/eq=amp&", "app:slash%2Feq%3Damp%26"),
        ("ünï", "pässwörd", "%C3%BCn%C3%AF:p%C3%A4ssw%C3%B6rd"),
        ("app", "safe-._~", "app:safe-._~"),
    ],
)
def test_basic_form_encodes_id_and_secret(
    make_client, client_id: str, secret: str, encoded_pair: str
) -> None:
    headers = client_auth(make_client(client_id=client_id, client_secret=secret), {})
    user, password = basic_pair(headers)
    assert f"{user}:{password}" == encoded_pair
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, secret)


def test_post_puts_credentials_in_form(make_client) -> None:
    form = {"grant_type": "refresh_token"}
    headers = client_auth(make_client(auth_style="client_secret_post"), form)
    assert "Authorization" not in headers
    assert form == {"grant_type": "refresh_token", "client_id": "app", "client_secret": "s3cret"}


def test_none_sends_only_client_id(make_client) -> None:
    form: dict[str, str] = {}
    headers = client_auth(make_client(client_secret=None), form)
    assert "Authorization" not in headers
    assert form == {"client_id": "app"}


def test_provider_token_headers_added(make_client) -> None:
    client = make_client(extra_token_headers={"X-Tenant": "acme"})
    headers = client_auth(client, {})
    assert headers["X-Tenant"] == "acme"
    assert "Authorization" in headers


def test_authenticated_post_on_the_wire(make_client, recorder: Recorder) -> None:
    client = make_client(client_secret="a:b c")
    result = authenticated_post(
        client,
        TOKEN_URL,
        {"grant_type": "authorization_code", "code": "xyz"},
        span_name=spans.TOKEN_EXCHANGE_HTTP,
        phase="callback.code_exchange",
        what="token endpoint",
    )
    assert result.ok
    (sent,) = recorder.requests
    assert sent.method == "POST"
    assert basic_pair(sent.headers) == ("app", "a%3Ab+c")
    assert parse_qs(sent.content.decode()) == {
        "grant_type": ["authorization_code"],
        "code": ["xyz"],
    }


def test_authenticated_post_public_client_on_the_wire(make_client, recorder: Recorder) -> None:
    authenticated_post(
        make_client(client_secret=None),
        TOKEN_URL,
        {"grant_type": "refresh_token", "refresh_token": "r"},
        span_name=spans.REFRESH,
        phase="refresh",
        what="token endpoint",
    )
    (sent,) = recorder.requests
    assert "authorization" not in sent.headers
    assert parse_qs(sent.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["r"],
        "client_id": ["app"],
    }


# -- safe_oauth_error -----------------------------------------------------------


@pytest.mark.parametrize("value", ["invalid_grant", "invalid_client", "temporarily.unavailable-1"])
def test_safe_error_codes_kept(value: str) -> None:
    assert safe_oauth_error(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", 3, ["invalid_grant"], "Invalid_Grant", "invalid grant", "<script>", "a" * 65, "é"],
)
def test_unsafe_error_codes_dropped(value: object) -> None:
    assert safe_oauth_error(value) is None


# -- raise_for_error ------------------------------------------------------------


def test_success_does_not_raise(make_client, telemetry) -> None:
    raise_for_error(make_client(), response({}), phase="p", what="token endpoint")
    assert telemetry.events() == []


def test_error_keeps_only_the_code(make_client, telemetry) -> None:
    body = {
        "error": "invalid_grant",
        "error_description": "code abc123-secret was already used by user@example.com",
        "error_uri": "https://idp.example/errors?token=zzz",
    }
    with pytest.raises(TokenEndpointError) as caught:
        raise_for_error(
            make_client(),
            response(body, 400),
            phase="callback.code_exchange",
            what="token endpoint",
        )
    error = caught.value
    assert error.status == 400
    assert error.oauth_error == "invalid_grant"
    assert error.reason == "invalid_grant"
    assert error.phase == "callback.code_exchange"
    assert error.message == "The token endpoint refused the request: HTTP 400 (invalid_grant)."
    assert "abc123-secret" not in repr(error)
    assert "user@example.com" not in repr(error)
    (event,) = telemetry.events("http_error")
    assert event["status"] == "http_400"
    assert event["oauth_error"] == "invalid_grant"
    assert event["phase"] == "callback.code_exchange"
    assert event["provider"] == "idp"
    assert len(event["body_digest"]) == 64
    assert "abc123-secret" not in telemetry.exported_text()


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>upstream secret page</html>",
        b'{"error": "invalid grant: upstream secret"}',
        b'{"error": 42, "detail": "upstream secret"}',
        b'{"error": "invalid_grant", "error": "upstream secret"}',
        b'["upstream secret"]',
        b"",
    ],
)
def test_error_without_safe_code(make_client, telemetry, raw: bytes) -> None:
    with pytest.raises(TokenEndpointError) as caught:
        raise_for_error(
            make_client(), response(None, 503, raw=raw), phase="p", what="revocation endpoint"
        )
    error = caught.value
    assert error.oauth_error is None
    assert error.reason == "http_503"
    assert error.message == "The revocation endpoint refused the request: HTTP 503."
    assert "upstream secret" not in telemetry.exported_text()
    (event,) = telemetry.events("http_error")
    assert "oauth_error" not in event


# -- parse_token_response -------------------------------------------------------


def parse(body: object, raw: bytes | None = None) -> Any:
    return parse_token_response(response(body, raw=raw), phase="callback.code_exchange", now=NOW)


def parse_error(body: object, raw: bytes | None = None) -> TokenEndpointError:
    with pytest.raises(TokenEndpointError) as caught:
        parse(body, raw)
    assert caught.value.reason == "invalid_token_response"
    assert caught.value.phase == "callback.code_exchange"
    assert caught.value.status == 200
    return caught.value


def test_full_response() -> None:
    parsed = parse(
        {
            "access_token": "at",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "rt",
            "id_token": "it",
            "scope": "openid  email",
        }
    )
    assert parsed.access_token == "at"
    assert parsed.token_type == "Bearer"
    assert parsed.expires_at == NOW + 3600
    assert parsed.expires_in_present is True
    assert parsed.refresh_token == "rt"
    assert parsed.id_token == "it"
    assert parsed.scope == ("openid", "email")


def test_minimal_response() -> None:
    parsed = parse({"access_token": "at", "token_type": "Bearer"})
    assert parsed.expires_at is None
    assert parsed.expires_in_present is False
    assert parsed.refresh_token is None
    assert parsed.id_token is None
    assert parsed.scope is None


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer"])
def test_bearer_any_case_normalised(token_type: str) -> None:
    assert parse({"access_token": "at", "token_type": token_type}).token_type == "Bearer"


def test_empty_optional_strings_mean_absent() -> None:
    parsed = parse(
        {"access_token": "at", "token_type": "Bearer", "refresh_token": "", "id_token": ""}
    )
    assert parsed.refresh_token is None
    assert parsed.id_token is None


@pytest.mark.parametrize(("value", "seconds"), [("3600", 3600), ("0", 0), (0, 0), (59.5, 59.5)])
def test_expires_in_forms(value: object, seconds: float) -> None:
    parsed = parse({"access_token": "at", "token_type": "Bearer", "expires_in": value})
    assert parsed.expires_at == NOW + seconds
    assert parsed.expires_in_present is True


def test_expires_in_uses_clock_when_now_omitted() -> None:
    before = time.time()
    parsed = parse_token_response(
        response({"access_token": "at", "token_type": "Bearer", "expires_in": 60}), phase="p"
    )
    assert before + 60 <= parsed.expires_at <= time.time() + 60


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"token_type": "Bearer"}, "access_token missing"),
        ({"access_token": "", "token_type": "Bearer"}, "access_token missing"),
        ({"access_token": 123, "token_type": "Bearer"}, "access_token missing"),
        ({"access_token": ["at"], "token_type": "Bearer"}, "access_token missing"),
        ({"access_token": "at"}, "token_type missing"),
        ({"access_token": "at", "token_type": ""}, "token_type missing"),
        ({"access_token": "at", "token_type": 1}, "token_type missing"),
        ({"access_token": "at", "token_type": "mac"}, "is not Bearer"),
        ({"access_token": "at", "token_type": "DPoP"}, "is not Bearer"),
        ({"access_token": "at", "token_type": "Bearer", "expires_in": -1}, "expires_in"),
        ({"access_token": "at", "token_type": "Bearer", "expires_in": "-1"}, "expires_in"),
        ({"access_token": "at", "token_type": "Bearer", "expires_in": "1h"}, "expires_in"),
        ({"access_token": "at", "token_type": "Bearer", "expires_in": "3600.5"}, "expires_in"),
        ({"access_token": "at", "token_type": "Bearer", "expires_in": True}, "expires_in"),
        ({"access_token": "at", "token_type": "Bearer", "expires_in": [60]}, "expires_in"),
        ({"access_token": "at", "token_type": "Bearer", "refresh_token": 1}, "refresh_token"),
        ({"access_token": "at", "token_type": "Bearer", "id_token": {}}, "id_token"),
        ({"access_token": "at", "token_type": "Bearer", "scope": ["openid"]}, "scope"),
    ],
)
def test_malformed_members(body: dict[str, Any], why: str) -> None:
    assert why in parse_error(body).message


@pytest.mark.parametrize(
    "raw",
    [
        b'{"access_token": "a", "token_type": "Bearer", "access_token": "b"}',
        b'{"access_token": "a", "token_type": "Bearer", "expires_in": NaN}',
        b"[]",
        b"access_token=a&token_type=Bearer",
        b"\xff",
        b"",
    ],
)
def test_body_not_a_strict_json_object(raw: bytes) -> None:
    assert "not a JSON object" in parse_error(None, raw).message


def test_refusal_never_echoes_tokens() -> None:
    body = {
        "access_token": "secret-access-value",
        "token_type": "mac",
        "refresh_token": "secret-rt",
    }
    error = parse_error(body)
    assert "secret-access-value" not in repr(error)
    assert "secret-rt" not in repr(error)


def test_long_token_type_truncated_in_message() -> None:
    error = parse_error({"access_token": "at", "token_type": "X" * 500})
    assert "X" * 33 not in error.message


def test_non_ascii_digit_string_expires_in_is_a_token_endpoint_error() -> None:
    # "²" passes str.isdigit() but int() refuses it.
    assert (
        "expires_in"
        in parse_error({"access_token": "at", "token_type": "Bearer", "expires_in": "²"}).message
    )


def test_infinite_expires_in_refused() -> None:
    # 1e999 parses to float('inf'): a token that would never expire.
    parse_error(None, b'{"access_token": "at", "token_type": "Bearer", "expires_in": 1e999}')


def test_deeply_nested_body_is_a_token_endpoint_error() -> None:
    raw = b'{"access_token": "at", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    parse_error(None, raw)
