"""Tests of dash_oauth_otel.core.presets.

Google, Entra and GitHub are static; Keycloak, Okta and Auth0 run discovery,
served here by an injected ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.discovery import WELL_KNOWN
from dash_oauth_otel.core.http import HttpClient
from dash_oauth_otel.core.presets import auth0
from dash_oauth_otel.core.presets import github
from dash_oauth_otel.core.presets import google
from dash_oauth_otel.core.presets import keycloak
from dash_oauth_otel.core.presets import microsoft_entra
from dash_oauth_otel.core.presets import okta
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import DiscoveryError

GUID = "0b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b"
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"
ENTRA = "https://login.microsoftonline.com"


@pytest.fixture
def closing() -> Iterator[Callable[[OAuthProvider], OAuthProvider]]:
    made: list[OAuthProvider] = []

    def keep(provider: OAuthProvider) -> OAuthProvider:
        made.append(provider)
        return provider

    yield keep
    for provider in made:
        provider.close()


def document(issuer: str, endpoint_base: str | None = None) -> dict[str, Any]:
    base = (endpoint_base or issuer).rstrip("/")
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/keys",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }


class DiscoveryServer:
    """Serves one discovery document and records the URLs asked for."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.urls: list[str] = []
        self.client = HttpClient(transport=httpx.MockTransport(self.answer))

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(
            200,
            content=json.dumps(self.doc).encode(),
            headers={"Content-Type": "application/json"},
        )


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Any]], DiscoveryServer]]:
    servers: list[DiscoveryServer] = []

    def make(doc: dict[str, Any]) -> DiscoveryServer:
        server = DiscoveryServer(doc)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.client.close()


# -- Google ---------------------------------------------------------------------


def test_google(closing) -> None:
    provider = closing(google())
    assert provider.name == "google"
    assert provider.issuer == "https://accounts.google.com"
    assert provider.is_oidc
    assert provider.authorization_endpoint == "https://accounts.google.com/o/oauth2/v2/auth"
    assert provider.token_endpoint == "https://oauth2.googleapis.com/token"
    assert provider.jwks_uri == "https://www.googleapis.com/oauth2/v3/certs"
    assert provider.userinfo_endpoint == "https://openidconnect.googleapis.com/v1/userinfo"
    assert provider.revocation_endpoint == "https://oauth2.googleapis.com/revoke"
    assert provider.id_token_algs == ("RS256",)
    assert dict(provider.extra_auth_params) == {"access_type": "offline"}
    assert set(provider.http.allowed_hosts) == {
        "accounts.google.com",
        "oauth2.googleapis.com",
        "openidconnect.googleapis.com",
        "www.googleapis.com",
    }
    assert provider.http.allow_insecure_loopback is False


def test_google_name_and_timeout(closing) -> None:
    provider = closing(google(name="corp-google", timeout=2.0))
    assert provider.name == "corp-google"
    assert provider.http.timeout == 2.0


def test_google_client_auth_methods(closing) -> None:
    provider = closing(google())
    client = OAuthClient(
        provider=provider,
        client_id="id",
        client_secret="secret",
        redirect_uri="https://app.example/cb",
        state_key="key-lSXpfKtHF4vUCsMehGAkWvj7FAc9",
    )
    assert client.auth_style == "client_secret_basic"
    with pytest.raises(ConfigError):
        OAuthClient(
            provider=provider,
            client_id="id",
            redirect_uri="https://app.example/cb",
            state_key="key-QeWJKY40uvSwMFLZDe1f8rESQedU",
        )


# -- Microsoft Entra ------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["common", "organizations"])
def test_entra_multi_tenant(closing, tenant: str) -> None:
    provider = closing(microsoft_entra(tenant))
    assert provider.issuer == f"{ENTRA}/{{tenantid}}/v2.0"
    assert provider.tenant_independent is True
    assert provider.authorization_endpoint == f"{ENTRA}/{tenant}/oauth2/v2.0/authorize"
    assert provider.token_endpoint == f"{ENTRA}/{tenant}/oauth2/v2.0/token"
    assert provider.jwks_uri == f"{ENTRA}/{tenant}/discovery/v2.0/keys"
    assert provider.end_session_endpoint == f"{ENTRA}/{tenant}/oauth2/v2.0/logout"


def test_entra_default_is_common(closing) -> None:
    assert closing(microsoft_entra()).authorization_endpoint.startswith(f"{ENTRA}/common/")


def test_entra_consumers(closing) -> None:
    provider = closing(microsoft_entra("consumers"))
    assert provider.issuer == f"{ENTRA}/{CONSUMERS}/v2.0"
    assert provider.tenant_independent is False
    assert provider.token_endpoint == f"{ENTRA}/consumers/oauth2/v2.0/token"


@pytest.mark.parametrize("tenant", [GUID, GUID.upper()])
def test_entra_single_tenant(closing, tenant: str) -> None:
    provider = closing(microsoft_entra(tenant))
    assert provider.issuer == f"{ENTRA}/{GUID}/v2.0"
    assert provider.tenant_independent is False
    assert provider.token_endpoint.endswith("/oauth2/v2.0/token")
    assert provider.token_endpoint.lower() == f"{ENTRA}/{GUID}/oauth2/v2.0/token"


def test_entra_common_policy(closing) -> None:
    provider = closing(microsoft_entra())
    assert provider.userinfo_endpoint == "https://graph.microsoft.com/oidc/userinfo"
    assert provider.id_token_algs == ("RS256",)
    assert set(provider.http.allowed_hosts) == {"login.microsoftonline.com", "graph.microsoft.com"}
    assert "none" in (provider.token_endpoint_auth_methods_supported or ())
    assert provider.supports_response_mode("form_post")


@pytest.mark.parametrize(
    "tenant",
    [
        "contoso.onmicrosoft.com",
        "contoso.com",
        "Common",
        "",
        f"{{{GUID}}}",
        GUID + "0",
        GUID[:-1],
        f"{GUID}/../common",
        "common/oauth2",
        "common?x=1",
    ],
)
def test_entra_refuses_other_tenant_forms(tenant: str) -> None:
    with pytest.raises(ConfigError) as caught:
        microsoft_entra(tenant)
    assert "tenant GUID" in caught.value.message


# -- GitHub ---------------------------------------------------------------------


def test_github(closing) -> None:
    provider = closing(github())
    assert provider.name == "github"
    assert provider.issuer is None
    assert not provider.is_oidc
    assert provider.jwks_uri is None
    assert provider.authorization_endpoint == "https://github.com/login/oauth/authorize"
    assert provider.token_endpoint == "https://github.com/login/oauth/access_token"
    assert provider.userinfo_endpoint == "https://api.github.com/user"
    assert provider.userinfo_subject_claim == "id"
    assert provider.revocation_endpoint is None
    assert set(provider.http.allowed_hosts) == {"github.com", "api.github.com"}
    with pytest.raises(ConfigError):
        _ = provider.jwks


# -- Keycloak -------------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["https://sso.example", "https://sso.example/"])
def test_keycloak_discovers_realm(closing, serve, base_url: str) -> None:
    issuer = "https://sso.example/realms/acme"
    server = serve(document(issuer, f"{issuer}/protocol/openid-connect"))
    provider = closing(keycloak(base_url, "acme", http_client=server.client))
    assert server.urls == [issuer + WELL_KNOWN]
    assert provider.name == "keycloak"
    assert provider.issuer == issuer
    assert provider.token_endpoint == f"{issuer}/protocol/openid-connect/token"


def test_keycloak_under_a_path(closing, serve) -> None:
    issuer = "https://id.example/auth/realms/acme"
    server = serve(document(issuer))
    provider = closing(keycloak("https://id.example/auth", "acme", http_client=server.client))
    assert server.urls == [issuer + WELL_KNOWN]
    assert provider.issuer == issuer


@pytest.mark.parametrize("realm", ["", "a/b", "/acme"])
def test_keycloak_refuses_bad_realm(serve, realm: str) -> None:
    server = serve(document("https://sso.example/realms/acme"))
    with pytest.raises(ConfigError) as caught:
        keycloak("https://sso.example", realm, http_client=server.client)
    assert "realm" in caught.value.message
    assert server.urls == []


def test_keycloak_issuer_mismatch(serve) -> None:
    server = serve(document("https://sso.example/realms/other"))
    with pytest.raises(DiscoveryError) as caught:
        keycloak("https://sso.example", "acme", http_client=server.client)
    assert caught.value.reason == "issuer_mismatch"


def test_keycloak_pins_endpoint_hosts(serve) -> None:
    # The presets module: "Every preset pins the hosts its endpoints may live on."
    issuer = "https://sso.example/realms/acme"
    doc = document(issuer)
    doc["token_endpoint"] = "https://evil.example/token"
    server = serve(doc)
    with pytest.raises(DiscoveryError) as caught:
        keycloak("https://sso.example", "acme", http_client=server.client)
    assert caught.value.reason == "endpoint_rejected"


# -- Okta -----------------------------------------------------------------------


def test_okta_default_authorization_server(closing, serve) -> None:
    issuer = "https://dev-123.okta.com/oauth2/default"
    server = serve(document(issuer, f"{issuer}/v1"))
    provider = closing(okta("dev-123.okta.com", http_client=server.client))
    assert server.urls == [issuer + WELL_KNOWN]
    assert provider.name == "okta"
    assert provider.issuer == issuer
    assert provider.http.allowed_hosts == ("dev-123.okta.com",)


def test_okta_custom_authorization_server(closing, serve) -> None:
    issuer = "https://dev-123.okta.com/oauth2/aus123"
    server = serve(document(issuer))
    provider = closing(okta("dev-123.okta.com", auth_server="aus123", http_client=server.client))
    assert provider.issuer == issuer
    # A pasted https:// prefix and trailing slash are tolerated.
    closing(okta("https://dev-123.okta.com/", auth_server="aus123", http_client=server.client))
    assert server.urls == [issuer + WELL_KNOWN] * 2


def test_okta_org_authorization_server(closing, serve) -> None:
    issuer = "https://dev-123.okta.com"
    server = serve(document(issuer, f"{issuer}/oauth2/v1"))
    provider = closing(okta("dev-123.okta.com", auth_server=None, http_client=server.client))
    assert server.urls == [issuer + WELL_KNOWN]
    assert provider.issuer == issuer


def test_okta_pins_endpoint_hosts(serve) -> None:
    issuer = "https://dev-123.okta.com/oauth2/default"
    doc = document(issuer)
    doc["jwks_uri"] = "https://evil.example/keys"
    server = serve(doc)
    with pytest.raises(DiscoveryError) as caught:
        okta("dev-123.okta.com", http_client=server.client)
    assert caught.value.reason == "endpoint_rejected"


def test_okta_domain_with_port(closing, serve) -> None:
    # The domain pattern accepts host:port, so such a domain must work end to end.
    issuer = "https://okta.internal.example:8443/oauth2/default"
    server = serve(document(issuer))
    provider = closing(okta("okta.internal.example:8443", http_client=server.client))
    assert server.urls == [issuer + WELL_KNOWN]
    assert provider.issuer == issuer


@pytest.mark.parametrize(
    "domain",
    [
        "http://dev-123.okta.com",
        "dev-123.okta.com/path",
        "user@dev-123.okta.com",
        "-dev.okta.com",
        "dev 123.okta.com",
        "",
    ],
)
def test_okta_refuses_bad_domain(serve, domain: str) -> None:
    server = serve(document("https://dev-123.okta.com/oauth2/default"))
    with pytest.raises(ConfigError) as caught:
        okta(domain, http_client=server.client)
    assert "okta(domain=...)" in caught.value.message
    assert server.urls == []


# -- Auth0 ----------------------------------------------------------------------


def test_auth0_keeps_trailing_slash_issuer(closing, serve) -> None:
    issuer = "https://acme.eu.auth0.com/"
    server = serve(document(issuer))
    provider = closing(auth0("acme.eu.auth0.com", http_client=server.client))
    assert server.urls == ["https://acme.eu.auth0.com" + WELL_KNOWN]
    assert provider.name == "auth0"
    assert provider.issuer == issuer
    assert provider.token_endpoint == "https://acme.eu.auth0.com/token"
    assert provider.http.allowed_hosts == ("acme.eu.auth0.com",)
    assert dict(provider.extra_auth_params) == {}


def test_auth0_audience(closing, serve) -> None:
    server = serve(document("https://acme.eu.auth0.com/"))
    provider = closing(
        auth0("acme.eu.auth0.com", audience="https://api.example", http_client=server.client)
    )
    assert dict(provider.extra_auth_params) == {"audience": "https://api.example"}


def test_auth0_pins_endpoint_hosts(serve) -> None:
    doc = document("https://acme.eu.auth0.com/")
    doc["authorization_endpoint"] = "https://evil.example/authorize"
    server = serve(doc)
    with pytest.raises(DiscoveryError) as caught:
        auth0("acme.eu.auth0.com", http_client=server.client)
    assert caught.value.reason == "endpoint_rejected"


def test_auth0_refuses_bad_domain(serve) -> None:
    server = serve(document("https://acme.eu.auth0.com/"))
    with pytest.raises(ConfigError):
        auth0("acme.eu.auth0.com/evil", http_client=server.client)
    assert server.urls == []
