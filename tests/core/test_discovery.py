"""Tests of dash_oauth_otel.core.discovery and the strict JSON parser it relies on.

The discovery document is served by an injected ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.discovery import WELL_KNOWN
from dash_oauth_otel.core.discovery import oidc_discover
from dash_oauth_otel.core.discovery import provider_from_metadata
from dash_oauth_otel.core.http import HttpClient
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import DiscoveryError
from dash_oauth_otel.errors import TransportError
from dash_oauth_otel.telemetry import spans

ISSUER = "https://idp.example"
DISCOVERY_URL = ISSUER + WELL_KNOWN


def metadata(issuer: str = ISSUER, **changes: Any) -> dict[str, Any]:
    """A complete, valid discovery document for ``issuer``; ``None`` removes a member."""
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer.rstrip('/')}/authorize",
        "token_endpoint": f"{issuer.rstrip('/')}/token",
        "jwks_uri": f"{issuer.rstrip('/')}/jwks",
        "userinfo_endpoint": f"{issuer.rstrip('/')}/userinfo",
        "response_types_supported": ["code", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def json_response(doc: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", **headers},
    )


class Served:
    """The requests a discovery run made."""

    def __init__(self) -> None:
        self.urls: list[str] = []


@pytest.fixture
def discover() -> Iterator[Callable[..., OAuthProvider]]:
    """Run ``oidc_discover`` against a transport answering with ``answer``."""
    opened: list[Any] = []

    def run(
        answer: httpx.Response | Callable[[httpx.Request], httpx.Response],
        issuer: str = ISSUER,
        *,
        served: Served | None = None,
        policy: HttpPolicy | None = None,
        **kwargs: Any,
    ) -> OAuthProvider:
        def handler(request: httpx.Request) -> httpx.Response:
            if served is not None:
                served.urls.append(str(request.url))
            return answer(request) if callable(answer) else answer

        client = HttpClient(policy or HttpPolicy(), transport=httpx.MockTransport(handler))
        opened.append(client)
        provider = oidc_discover(issuer, http_client=client, **kwargs)
        opened.append(provider)
        return provider

    yield run
    for item in opened:
        item.close()


def discovery_error(discover: Callable[..., OAuthProvider], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DiscoveryError) as caught:
        discover(*args, **kwargs)
    assert caught.value.phase == "discovery"
    assert caught.value.error == "discovery_error"
    assert isinstance(caught.value, ConfigError)
    return str(caught.value.reason)


def from_metadata(meta: dict[str, Any], issuer: str = ISSUER, **kwargs: Any) -> OAuthProvider:
    provider = provider_from_metadata(meta, issuer=issuer, name="idp", http=HttpPolicy(), **kwargs)
    provider.close()
    return provider


def metadata_error(meta: dict[str, Any], issuer: str = ISSUER, **kwargs: Any) -> str:
    with pytest.raises(DiscoveryError) as caught:
        from_metadata(meta, issuer, **kwargs)
    return str(caught.value.reason)


# -- strict JSON ----------------------------------------------------------------


def test_json_object_parsed_from_bytes_and_str() -> None:
    assert parse_json_object(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert parse_json_object('{"é": "ü"}') == {"é": "ü"}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"x": {"a": 1, "a": 1}}',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        "[]",
        '"object"',
        "null",
        "3",
        "",
        "{",
        "{'a': 1}",
        b'{"a": "\xff"}',
    ],
)
def test_json_refusals_are_value_errors(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        parse_json_object(text)


def test_json_number_overflowing_to_infinity_refused() -> None:
    # 1e999 parses to float('inf'): the same non-finite value as the refused Infinity.
    with pytest.raises(ValueError):
        parse_json_object('{"a": 1e999}')


def test_json_deep_nesting_is_a_value_error() -> None:
    depth = 5000
    with pytest.raises(ValueError):
        parse_json_object('{"a": ' + "[" * depth + "]" * depth + "}")


# -- oidc_discover: success -----------------------------------------------------


def test_discovery_builds_provider(discover) -> None:
    served = Served()
    provider = discover(json_response(metadata()), served=served, name="idp")
    assert served.urls == [DISCOVERY_URL]
    assert provider.name == "idp"
    assert provider.issuer == ISSUER
    assert provider.is_oidc
    assert provider.authorization_endpoint == f"{ISSUER}/authorize"
    assert provider.token_endpoint == f"{ISSUER}/token"
    assert provider.jwks_uri == f"{ISSUER}/jwks"
    assert provider.userinfo_endpoint == f"{ISSUER}/userinfo"
    assert provider.id_token_algs == ("RS256", "ES256")
    assert provider.token_endpoint_auth_methods_supported == ("client_secret_basic", "none")
    assert provider.response_modes_supported == ("query", "fragment")
    assert provider.par_required is False
    assert provider.iss_parameter_supported is False


def test_discovery_sends_accept_json(discover) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(metadata())

    discover(answer)
    assert seen[0].method == "GET"
    assert seen[0].headers["accept"] == "application/json"


def test_name_defaults_to_issuer_host(discover) -> None:
    provider = discover(
        json_response(metadata("https://idp.example/realms/x")), "https://idp.example/realms/x"
    )
    assert provider.name == "idp.example"


def test_content_type_parameters_accepted(discover) -> None:
    answer = httpx.Response(
        200,
        content=json.dumps(metadata()).encode(),
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )
    assert discover(answer).issuer == ISSUER


def test_optional_metadata_carried_over(discover) -> None:
    doc = metadata(
        revocation_endpoint=f"{ISSUER}/revoke",
        introspection_endpoint=f"{ISSUER}/introspect",
        pushed_authorization_request_endpoint=f"{ISSUER}/par",
        end_session_endpoint=f"{ISSUER}/logout",
        require_pushed_authorization_requests=True,
        authorization_response_iss_parameter_supported=True,
        response_modes_supported=["query", "form_post"],
    )
    provider = discover(json_response(doc))
    assert provider.revocation_endpoint == f"{ISSUER}/revoke"
    assert provider.introspection_endpoint == f"{ISSUER}/introspect"
    assert provider.pushed_authorization_request_endpoint == f"{ISSUER}/par"
    assert provider.end_session_endpoint == f"{ISSUER}/logout"
    assert provider.par_required is True
    assert provider.iss_parameter_supported is True
    assert provider.response_modes_supported == ("query", "form_post")


def test_well_known_url_normalised_to_issuer(discover) -> None:
    served = Served()
    provider = discover(json_response(metadata()), DISCOVERY_URL, served=served)
    assert served.urls == [DISCOVERY_URL]
    assert provider.issuer == ISSUER


@pytest.mark.parametrize(
    ("asked", "advertised"),
    [
        ("https://idp.example/", "https://idp.example"),
        ("https://idp.example", "https://idp.example/"),
        ("https://idp.example/tenant/", "https://idp.example/tenant"),
    ],
)
def test_trailing_slash_tolerated(discover, asked: str, advertised: str) -> None:
    served = Served()
    provider = discover(json_response(metadata(advertised)), asked, served=served)
    # The advertised value is kept: ID tokens are compared with it later.
    assert provider.issuer == advertised
    assert served.urls == [asked.rstrip("/") + WELL_KNOWN]


def test_id_token_algs_intersected_in_caller_order(discover) -> None:
    doc = metadata(id_token_signing_alg_values_supported=["RS256", "ES256", "HS256", "none"])
    provider = discover(json_response(doc), id_token_algs=("ES256", "RS256", "PS256"))
    assert provider.id_token_algs == ("ES256", "RS256")


def test_pkce_methods_absent_is_accepted(discover) -> None:
    provider = discover(json_response(metadata(code_challenge_methods_supported=None)))
    assert provider.issuer == ISSUER


def test_auth_methods_absent_defaults_to_basic(discover) -> None:
    doc = metadata(token_endpoint_auth_methods_supported=None)
    assert discover(json_response(doc)).token_endpoint_auth_methods_supported == (
        "client_secret_basic",
    )


def test_extra_auth_params_carried(discover) -> None:
    provider = discover(json_response(metadata()), extra_auth_params={"audience": "api"})
    assert dict(provider.extra_auth_params) == {"audience": "api"}


def test_loopback_http_issuer_with_opt_in(discover) -> None:
    issuer = "http://127.0.0.1:9999"
    provider = discover(
        json_response(metadata(issuer)),
        issuer,
        policy=HttpPolicy(allow_insecure_loopback=True),
        allow_insecure_loopback=True,
    )
    assert provider.issuer == issuer
    assert provider.http.allow_insecure_loopback


def test_discovery_spans(discover, telemetry) -> None:
    discover(json_response(metadata()), name="idp")
    outer = telemetry.span(spans.DISCOVERY)
    inner = telemetry.span(spans.DISCOVERY_HTTP)
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert dict(outer.attributes or {})["oauth.provider.name"] == "idp"
    assert dict(outer.attributes or {})["oauth.provider.issuer"] == ISSUER
    assert dict(inner.attributes or {})["url.full"] == DISCOVERY_URL


# -- oidc_discover: refusals ----------------------------------------------------


def test_issuer_mismatch(discover) -> None:
    answer = json_response(metadata("https://evil.example"))
    assert discovery_error(discover, answer) == "issuer_mismatch"


def test_issuer_mismatch_by_path(discover) -> None:
    answer = json_response(metadata("https://idp.example/other"))
    assert discovery_error(discover, answer, "https://idp.example/tenant") == "issuer_mismatch"


@pytest.mark.parametrize("value", [None, "", 42, ["https://idp.example"]])
def test_issuer_missing(discover, value: object) -> None:
    doc = metadata()
    if value is None:
        del doc["issuer"]
    else:
        doc["issuer"] = value
    assert discovery_error(discover, json_response(doc)) == "issuer_missing"


@pytest.mark.parametrize(
    "member",
    [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ],
)
def test_required_metadata_missing(discover, member: str) -> None:
    doc = metadata(**{member: None})
    assert discovery_error(discover, json_response(doc)) == "metadata_missing"


@pytest.mark.parametrize("value", [["id_token"], ["code id_token"], [], None])
def test_code_flow_unsupported(discover, value: list[str] | None) -> None:
    doc = metadata(response_types_supported=value)
    assert discovery_error(discover, json_response(doc)) == "code_flow_unsupported"


@pytest.mark.parametrize("methods", [["plain"], []])
def test_pkce_without_s256_refused(discover, methods: list[str]) -> None:
    doc = metadata(code_challenge_methods_supported=methods)
    assert discovery_error(discover, json_response(doc)) == "pkce_s256_unsupported"


@pytest.mark.parametrize("algs", [["HS256"], ["none"], ["HS256", "none", "RS1"]])
def test_no_common_alg(discover, algs: list[str]) -> None:
    doc = metadata(id_token_signing_alg_values_supported=algs)
    assert discovery_error(discover, json_response(doc)) == "no_common_alg"


def test_no_common_alg_with_narrowed_allowlist(discover) -> None:
    answer = json_response(metadata())
    assert discovery_error(discover, answer, id_token_algs=("EdDSA",)) == "no_common_alg"


@pytest.mark.parametrize("content_type", ["text/html", "application/jwk-set+json", ""])
def test_non_json_content_type(discover, content_type: str) -> None:
    answer = httpx.Response(
        200, content=json.dumps(metadata()).encode(), headers={"Content-Type": content_type}
    )
    assert discovery_error(discover, answer) == "content_type_invalid"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"text"',
        b"not json",
        b'{"issuer": "https://idp.example", "issuer": "https://idp.example"}',
        b'{"issuer": NaN}',
        b"\xff\xfe",
    ],
)
def test_body_not_a_strict_json_object(discover, body: bytes) -> None:
    answer = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    assert discovery_error(discover, answer) == "json_invalid"


def test_duplicate_member_cannot_smuggle_an_endpoint(discover) -> None:
    text = json.dumps(metadata())
    text = text[:-1] + ', "token_endpoint": "https://evil.example/token"}'
    answer = httpx.Response(
        200, content=text.encode(), headers={"Content-Type": "application/json"}
    )
    assert discovery_error(discover, answer) == "json_invalid"


def test_deeply_nested_document_is_a_discovery_error(discover) -> None:
    body = b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    answer = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    assert discovery_error(discover, answer) == "json_invalid"


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error(discover, telemetry, status: int) -> None:
    answer = httpx.Response(
        status, content=b"internal secret detail", headers={"Content-Type": "text/plain"}
    )
    with pytest.raises(DiscoveryError) as caught:
        discover(answer, name="idp")
    assert caught.value.reason == "http_error"
    assert str(status) in caught.value.message
    assert "internal secret detail" not in str(caught.value)
    (event,) = telemetry.events("http_error")
    assert event["status"] == f"http_{status}"
    assert event["phase"] == "discovery"
    assert len(event["body_digest"]) == 64
    assert "internal secret detail" not in telemetry.exported_text()


def test_redirect_refused_and_not_followed(discover) -> None:
    served = Served()
    answer = httpx.Response(302, headers={"Location": "https://evil.example" + WELL_KNOWN})
    with pytest.raises(TransportError) as caught:
        discover(answer, served=served)
    assert caught.value.reason == "redirect_refused"
    assert caught.value.phase == "discovery"
    assert served.urls == [DISCOVERY_URL]


def test_oversized_document_refused(discover) -> None:
    answer = httpx.Response(
        200, content=b" " * ((1 << 20) + 1), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(TransportError) as caught:
        discover(answer)
    assert caught.value.reason == "body_too_large"


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.example", "http://127.0.0.1:9999", "https://user:pw@idp.example", "idp.example"],
)
def test_unacceptable_issuer_refused_before_any_request(discover, issuer: str) -> None:
    served = Served()
    with pytest.raises(ConfigError):
        discover(json_response(metadata(issuer)), issuer, served=served)
    assert served.urls == []


def test_http_issuer_off_loopback_refused_even_with_opt_in(discover) -> None:
    served = Served()
    with pytest.raises(ConfigError):
        discover(
            json_response(metadata("http://idp.example")),
            "http://idp.example",
            served=served,
            allow_insecure_loopback=True,
        )
    assert served.urls == []


def test_issuer_with_query_refused(discover) -> None:
    served = Served()
    with pytest.raises(ConfigError):
        discover(json_response(metadata()), "https://idp.example/?tenant=1", served=served)
    assert served.urls == []


def test_issuer_outside_allowlist_refused(discover) -> None:
    served = Served()
    with pytest.raises(ConfigError):
        discover(json_response(metadata()), served=served, allowed_hosts=("other.example",))
    assert served.urls == []


def test_endpoint_outside_allowlist_refused(discover) -> None:
    doc = metadata(token_endpoint="https://evil.example/token")
    answer = json_response(doc)
    assert discovery_error(discover, answer, allowed_hosts=("idp.example",)) == (
        "endpoint_rejected"
    )


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("token_endpoint", "http://idp.example/token"),
        ("jwks_uri", "https://user:pw@idp.example/jwks"),
        ("authorization_endpoint", "https://idp.example/authorize#frag"),
        ("userinfo_endpoint", "/userinfo"),
    ],
)
def test_discovered_endpoint_failing_policy_refused(discover, member: str, value: str) -> None:
    doc = metadata(**{member: value})
    assert discovery_error(discover, json_response(doc)) == "endpoint_rejected"


def test_loopback_http_endpoint_refused_for_https_issuer(discover) -> None:
    doc = metadata(jwks_uri="http://127.0.0.1/jwks")
    assert discovery_error(discover, json_response(doc)) == "endpoint_rejected"


# -- Microsoft Entra multi-tenant -----------------------------------------------

ENTRA = "https://login.microsoftonline.com"


@pytest.mark.parametrize("tenant", ["common", "organizations"])
def test_tenant_independent_issuer_template(discover, tenant: str) -> None:
    served = Served()
    template = f"{ENTRA}/{{tenantid}}/v2.0"
    doc = metadata(template)
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        doc[key] = doc[key].replace("{tenantid}", tenant)
    provider = discover(
        json_response(doc), f"{ENTRA}/{tenant}/v2.0", served=served, tenant_independent=True
    )
    assert served.urls == [f"{ENTRA}/{tenant}/v2.0{WELL_KNOWN}"]
    assert provider.issuer == template
    assert provider.tenant_independent is True


def test_tenant_template_without_opt_in_is_a_mismatch(discover) -> None:
    doc = metadata(f"{ENTRA}/{{tenantid}}/v2.0")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        doc[key] = doc[key].replace("{tenantid}", "common")
    answer = json_response(doc)
    assert discovery_error(discover, answer, f"{ENTRA}/common/v2.0") == "issuer_mismatch"


# -- provider_from_metadata -----------------------------------------------------


def test_from_metadata_builds_provider() -> None:
    provider = from_metadata(metadata(), "https://idp.example/")
    assert provider.issuer == ISSUER
    assert provider.name == "idp"


@pytest.mark.parametrize(
    "member",
    [
        "scopes_supported",
        "response_types_supported",
        "response_modes_supported",
        "grant_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
        "code_challenge_methods_supported",
        "claims_supported",
    ],
)
@pytest.mark.parametrize("value", ["code", ["code", 3], {"code": True}])
def test_malformed_string_arrays(member: str, value: object) -> None:
    assert metadata_error(metadata(**{member: value})) == "metadata_type_invalid"


@pytest.mark.parametrize(
    "member",
    ["authorization_response_iss_parameter_supported", "require_pushed_authorization_requests"],
)
@pytest.mark.parametrize("value", ["true", 1, []])
def test_malformed_booleans(member: str, value: object) -> None:
    doc = metadata(pushed_authorization_request_endpoint=f"{ISSUER}/par")
    doc[member] = value
    assert metadata_error(doc) == "metadata_type_invalid"


@pytest.mark.parametrize(
    "member",
    [
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "pushed_authorization_request_endpoint",
        "end_session_endpoint",
    ],
)
def test_malformed_optional_url(member: str) -> None:
    assert metadata_error(metadata(**{member: 7})) == "metadata_type_invalid"


@pytest.mark.parametrize("member", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_required_url_of_wrong_type(member: str) -> None:
    assert metadata_error(metadata(**{member: ["https://idp.example/x"]})) == "metadata_missing"


def test_par_required_without_endpoint_refused() -> None:
    doc = metadata(require_pushed_authorization_requests=True)
    assert metadata_error(doc) == "endpoint_rejected"


def test_error_messages_name_the_issuer() -> None:
    with pytest.raises(DiscoveryError) as caught:
        from_metadata(metadata(code_challenge_methods_supported=["plain"]))
    assert ISSUER in caught.value.message
    assert "plain" in caught.value.message
