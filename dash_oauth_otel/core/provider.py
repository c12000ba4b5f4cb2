"""The authorization server (OAuth 2.0) or OpenID provider a client talks to.

:class:`OAuthProvider` holds endpoints and security policy.  Build one
explicitly, or with :func:`~dash_oauth_otel.core.discovery.oidc_discover` or a
preset (:mod:`dash_oauth_otel.core.presets`).  Every endpoint URL is checked by
the URL policy at construction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.http import HttpClient
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.jwks import JWKSCache
from dash_oauth_otel.core.urls import check_endpoint_url
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import HTTPError
from dash_oauth_otel.errors import JWKSError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.redact import digest

__all__ = ["DEFAULT_ID_TOKEN_ALGS", "OAuthProvider"]

DEFAULT_ID_TOKEN_ALGS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""Asymmetric algorithms accepted for ID tokens; ``none`` and HS* never are."""

_ENDPOINTS = (
    ("authorization_endpoint", "authorization endpoint"),
    ("token_endpoint", "token endpoint"),
    ("userinfo_endpoint", "userinfo endpoint"),
    ("revocation_endpoint", "revocation endpoint"),
    ("introspection_endpoint", "introspection endpoint"),
    ("pushed_authorization_request_endpoint", "PAR endpoint"),
    ("end_session_endpoint", "end-session endpoint"),
    ("jwks_uri", "JWKS URI"),
)


@dataclass(frozen=True, eq=False)
class OAuthProvider:
    """An OAuth 2.0 authorization server or OpenID provider.

    :param name: A short label used in telemetry (``"google"``, ``"keycloak"``).
    :param authorization_endpoint: Where the browser is sent to log in.
    :param token_endpoint: Where codes and refresh tokens are exchanged.
    :param issuer: The OpenID issuer identifier; setting it makes the provider
        OpenID Connect (ID tokens required and validated, nonce sent).
    :param jwks_uri: The provider's key set (required for OpenID Connect).
    :param userinfo_endpoint: Optional userinfo endpoint.
    :param revocation_endpoint: Optional RFC 7009 endpoint.
    :param introspection_endpoint: Optional RFC 7662 endpoint.
    :param pushed_authorization_request_endpoint: Optional RFC 9126 endpoint.
    :param end_session_endpoint: Optional RP-initiated logout endpoint.
    :param par_required: The provider accepts only pushed requests.
    :param iss_parameter_supported: The provider sends RFC 9207 ``iss`` in
        authorization responses; the client then enforces it.
    :param response_modes_supported: Advertised response modes, if known.
    :param token_endpoint_auth_methods_supported: Advertised client
        authentication methods, if known.
    :param id_token_algs: ID-token signature algorithms accepted.
    :param userinfo_subject_claim: Claim of the userinfo response that names the
        user (``"sub"``; GitHub's API uses ``"id"``).
    :param tenant_independent: The issuer is a template with ``{tenantid}``
        (Microsoft Entra ``common`` / ``organizations``).
    :param extra_auth_params: Fixed extra authorization parameters
        (e.g. ``{"access_type": "offline"}``).
    :param extra_token_headers: Extra headers sent to the token endpoint.
    :param leeway: Clock skew tolerated in token time checks, seconds.
    :param max_id_token_lifetime: Longest ``exp - iat`` accepted, seconds.
    :param http: The outbound HTTP policy for this provider's endpoints.
    """

    name: str
    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    pushed_authorization_request_endpoint: str | None = None
    end_session_endpoint: str | None = None
    par_required: bool = False
    iss_parameter_supported: bool = False
    response_modes_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    id_token_algs: tuple[str, ...] = DEFAULT_ID_TOKEN_ALGS
    userinfo_subject_claim: str = "sub"
    tenant_independent: bool = False
    extra_auth_params: Mapping[str, str] = field(default_factory=dict)
    extra_token_headers: Mapping[str, str] = field(default_factory=dict)
    leeway: float = 30.0
    max_id_token_lifetime: float = 86400.0
    http: HttpPolicy = field(default_factory=HttpPolicy)
    http_client: HttpClient | None = field(default=None, repr=False)
    _jwks: JWKSCache | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError("OAuthProvider.name must be a non-empty string.")
        for attr_name, what in _ENDPOINTS:
            value = getattr(self, attr_name)
            if value is not None:
                check_endpoint_url(
                    value,
                    what=f"{self.name} {what}",
                    allow_insecure_loopback=self.http.allow_insecure_loopback,
                    allowed_hosts=self.http.allowed_hosts,
                )
        if self.issuer is not None:
            if not self.tenant_independent:
                check_endpoint_url(
                    self.issuer,
                    what=f"{self.name} issuer",
                    allow_insecure_loopback=self.http.allow_insecure_loopback,
                    allowed_hosts=self.http.allowed_hosts,
                )
            if "?" in self.issuer or "#" in self.issuer:
                raise ConfigError("The issuer must not carry a query or fragment.")
            if self.jwks_uri is None:
                raise ConfigError(
                    f"The OpenID provider {self.name!r} needs a jwks_uri to validate "
                    "ID tokens; pass jwks_uri= or build it with oidc_discover()."
                )
        if self.tenant_independent and (not self.issuer or "{tenantid}" not in self.issuer):
            raise ConfigError("tenant_independent=True needs an issuer template with {tenantid}.")
        if self.par_required and self.pushed_authorization_request_endpoint is None:
            raise ConfigError(
                f"{self.name} requires pushed authorization requests but has no "
                "pushed_authorization_request_endpoint."
            )
        algs = tuple(self.id_token_algs)
        bad = [a for a in algs if a not in DEFAULT_ID_TOKEN_ALGS]
        if bad or not algs:
            raise ConfigError(
                f"id_token_algs must be a non-empty subset of {list(DEFAULT_ID_TOKEN_ALGS)}; "
                f"{bad or 'none'} cannot be accepted (none and HS* are never allowed)."
            )
        object.__setattr__(self, "id_token_algs", algs)
        if self.http_client is None:
            object.__setattr__(self, "http_client", HttpClient(self.http))
        if self.jwks_uri is not None:
            object.__setattr__(self, "_jwks", JWKSCache(self._fetch_jwks))

    @property
    def is_oidc(self) -> bool:
        """Whether the provider is an OpenID provider (an issuer is configured)."""
        return self.issuer is not None

    @property
    def client(self) -> HttpClient:
        """The provider's HTTP client."""
        assert self.http_client is not None  # set in __post_init__  # noqa: S101
        return self.http_client

    @property
    def jwks(self) -> JWKSCache:
        """The provider's cached key set."""
        if self._jwks is None:
            raise ConfigError(f"{self.name} has no jwks_uri; ID tokens cannot be validated.")
        return self._jwks

    def close(self) -> None:
        """Close the provider's pooled HTTP connections."""
        self.client.close()

    def supports_response_mode(self, mode: str) -> bool:
        """Whether ``mode`` is advertised (unknown metadata counts as supported)."""
        return self.response_modes_supported is None or mode in self.response_modes_supported

    def telemetry_attributes(self) -> dict[str, str]:
        """The provider's span attributes."""
        out = {attr.OAUTH_PROVIDER_NAME: self.name}
        if self.issuer:
            out[attr.OAUTH_PROVIDER_ISSUER] = self.issuer
        return out

    def fingerprint(self) -> str:
        """A digest of the security-relevant configuration, sealed into login state.

        A state minted under one provider configuration is refused by another.
        """
        material: dict[str, Any] = {
            "issuer": self.issuer,
            "tenant_independent": self.tenant_independent,
            "userinfo_subject_claim": self.userinfo_subject_claim,
            "id_token_algs": list(self.id_token_algs),
            "iss_parameter_supported": self.iss_parameter_supported,
        }
        for attr_name, _ in _ENDPOINTS:
            material[attr_name] = getattr(self, attr_name)
        blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def _fetch_jwks(self) -> object:
        assert self.jwks_uri is not None  # noqa: S101 - only called when configured
        with spans.span(spans.JWKS, {**self.telemetry_attributes(), attr.OAUTH_PHASE: "jwks"}):
            response = self.client.request(
                "GET",
                self.jwks_uri,
                span_name=spans.JWKS_HTTP,
                phase="jwks",
                what=f"{self.name} JWKS URI",
                headers={"Accept": "application/jwk-set+json, application/json"},
            )
            if not response.ok:
                audit.emit(
                    audit.HTTP_ERROR,
                    provider=self.name,
                    issuer=self.issuer,
                    phase="jwks",
                    status=f"http_{response.status}",
                    body_digest=digest(response.content),
                )
                raise HTTPError(
                    f"The {self.name} JWKS URI answered HTTP {response.status}.",
                    status=response.status,
                    phase="jwks",
                    reason="jwks_http_error",
                )
            try:
                return parse_json_object(response.content)
            except (ValueError, UnicodeDecodeError):
                raise JWKSError(
                    f"The {self.name} JWKS is not a JSON object.",
                    phase="jwks",
                    reason="jwks_not_object",
                ) from None
