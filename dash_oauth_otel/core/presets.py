"""Provider presets for common identity providers.

Google, Microsoft Entra and GitHub are built from their published endpoints
(no network at construction); Keycloak, Okta and Auth0 run hardened discovery
(:func:`~dash_oauth_otel.core.discovery.oidc_discover`) against the tenant's
own issuer.  Every preset pins the hosts its endpoints may live on.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from dash_oauth_otel.core.discovery import oidc_discover
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.errors import ConfigError

__all__ = ["auth0", "github", "google", "keycloak", "microsoft_entra", "okta"]

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?")


def google(*, name: str = "google", timeout: float = 5.0) -> OAuthProvider:
    """Google's OpenID provider (``https://accounts.google.com``).

    Sends ``access_type=offline`` so that a refresh token is issued.
    """
    return OAuthProvider(
        name=name,
        issuer="https://accounts.google.com",
        authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        token_endpoint="https://oauth2.googleapis.com/token",
        userinfo_endpoint="https://openidconnect.googleapis.com/v1/userinfo",
        revocation_endpoint="https://oauth2.googleapis.com/revoke",
        jwks_uri="https://www.googleapis.com/oauth2/v3/certs",
        token_endpoint_auth_methods_supported=("client_secret_post", "client_secret_basic"),
        response_modes_supported=("query", "fragment", "form_post"),
        id_token_algs=("RS256",),
        extra_auth_params={"access_type": "offline"},
        http=HttpPolicy(
            timeout=timeout,
            allowed_hosts=(
                "accounts.google.com",
                "oauth2.googleapis.com",
                "openidconnect.googleapis.com",
                "www.googleapis.com",
            ),
        ),
    )


def microsoft_entra(
    tenant: str = "common", *, name: str = "microsoft", timeout: float = 5.0
) -> OAuthProvider:
    """Microsoft Entra ID (v2.0 endpoints).

    :param tenant: A tenant GUID (single tenant, strict issuer), ``"organizations"``
        or ``"common"`` (multi-tenant: the issuer is checked against the tenant
        named by each token's ``tid``), or ``"consumers"`` (personal accounts).
    """
    if tenant in ("common", "organizations"):
        issuer, tenant_independent = "https://login.microsoftonline.com/{tenantid}/v2.0", True
    elif tenant == "consumers":
        issuer, tenant_independent = (
            f"https://login.microsoftonline.com/{_CONSUMERS_TENANT}/v2.0",
            False,
        )
    elif _GUID.fullmatch(tenant):
        issuer, tenant_independent = (
            f"https://login.microsoftonline.com/{tenant.lower()}/v2.0",
            False,
        )
    else:
        raise ConfigError(
            "microsoft_entra(tenant=...) takes a tenant GUID (Directory ID in the Entra "
            "portal), 'organizations', 'common' or 'consumers'; a domain name cannot be "
            "checked against the issuer."
        )
    base = f"https://login.microsoftonline.com/{tenant}"
    return OAuthProvider(
        name=name,
        issuer=issuer,
        tenant_independent=tenant_independent,
        authorization_endpoint=f"{base}/oauth2/v2.0/authorize",
        token_endpoint=f"{base}/oauth2/v2.0/token",
        jwks_uri=f"{base}/discovery/v2.0/keys",
        userinfo_endpoint="https://graph.microsoft.com/oidc/userinfo",
        end_session_endpoint=f"{base}/oauth2/v2.0/logout",
        token_endpoint_auth_methods_supported=(
            "client_secret_post",
            "client_secret_basic",
            "none",
        ),
        response_modes_supported=("query", "fragment", "form_post"),
        id_token_algs=("RS256",),
        http=HttpPolicy(
            timeout=timeout, allowed_hosts=("login.microsoftonline.com", "graph.microsoft.com")
        ),
    )


def github(*, name: str = "github", timeout: float = 5.0) -> OAuthProvider:
    """GitHub OAuth apps (OAuth 2.0, not OpenID Connect).

    The user is identified by the numeric ``id`` of ``https://api.github.com/user``
    (exposed as ``sub``).  GitHub has no RFC 7009 revocation endpoint.
    """
    return OAuthProvider(
        name=name,
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",
        userinfo_endpoint="https://api.github.com/user",
        userinfo_subject_claim="id",
        token_endpoint_auth_methods_supported=("client_secret_post", "client_secret_basic"),
        http=HttpPolicy(timeout=timeout, allowed_hosts=("github.com", "api.github.com")),
    )


def _host(value: str, what: str) -> str:
    value = value.strip().removeprefix("https://").rstrip("/")
    if not _HOSTNAME.fullmatch(value):
        raise ConfigError(f"{what} must be a host name like 'login.example.com', got {value!r}.")
    return value


def keycloak(
    base_url: str, realm: str, *, name: str = "keycloak", **discover: Any
) -> OAuthProvider:
    """A Keycloak realm, by discovery at ``<base_url>/realms/<realm>``.

    :param base_url: The server's external URL (``https://sso.example.com``).
    :param realm: The realm name.
    :param discover: Passed to :func:`oidc_discover` (e.g. ``allowed_hosts``).
    """
    if not realm or "/" in realm:
        raise ConfigError("keycloak(realm=...) must be a realm name without '/'.")
    host = urlsplit(base_url).hostname
    if not host:
        raise ConfigError(
            "keycloak(base_url=...) must be an absolute URL like https://sso.example.com."
        )
    discover.setdefault("allowed_hosts", (host,))
    return oidc_discover(f"{base_url.rstrip('/')}/realms/{realm}", name=name, **discover)


def okta(
    domain: str, *, auth_server: str | None = "default", name: str = "okta", **discover: Any
) -> OAuthProvider:
    """An Okta org, by discovery.

    :param domain: The Okta domain (``dev-123.okta.com``).
    :param auth_server: The custom authorization server id (``"default"``), or
        ``None`` for the org authorization server.
    """
    host = _host(domain, "okta(domain=...)")
    issuer = f"https://{host}" + (f"/oauth2/{auth_server}" if auth_server else "")
    discover.setdefault("allowed_hosts", (host.split(":")[0],))
    return oidc_discover(issuer, name=name, **discover)


def auth0(
    domain: str, *, audience: str | None = None, name: str = "auth0", **discover: Any
) -> OAuthProvider:
    """An Auth0 tenant, by discovery (its issuer keeps the trailing ``/``).

    :param domain: The tenant domain (``my-tenant.eu.auth0.com`` or a custom domain).
    :param audience: The API identifier to request access tokens for.
    """
    host = _host(domain, "auth0(domain=...)")
    discover.setdefault("allowed_hosts", (host.split(":")[0],))
    if audience:
        discover.setdefault("extra_auth_params", {"audience": audience})
    return oidc_discover(f"https://{host}/", name=name, **discover)
