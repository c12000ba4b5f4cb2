"""Hardened OpenID Connect discovery.

OpenID Connect Discovery 1.0 — https://openid.net/specs/openid-connect-discovery-1_0.html

:func:`oidc_discover` fetches ``<issuer>/.well-known/openid-configuration``
through the package's HTTP seam (no redirects, size cap, timeout) and trusts
nothing it did not check:

* the document's ``issuer`` must be the one asked for (§4.3);
* endpoints must pass the URL policy (https, loopback only by opt-in, allowlist);
* required metadata must be present with the right types (§3);
* the ID-token algorithms are the allowlist intersected with what is advertised;
* PKCE is never downgraded: a provider that does not list ``S256`` is refused;
* client authentication is never guessed: the advertised methods are kept so
  the client can check its own choice against them.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.http import HttpClient
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.provider import DEFAULT_ID_TOKEN_ALGS
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.core.urls import check_endpoint_url
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import DiscoveryError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.redact import digest

__all__ = ["WELL_KNOWN", "oidc_discover", "provider_from_metadata"]

WELL_KNOWN = "/.well-known/openid-configuration"

_STRING_ARRAYS = (
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "claims_supported",
)


def _normalise_issuer(issuer: str) -> str:
    if issuer.endswith(WELL_KNOWN):
        issuer = issuer[: -len(WELL_KNOWN)]
    return issuer


def _same_issuer(expected: str, actual: str) -> bool:
    # §4.3 asks for identical strings; one trailing slash of difference is
    # tolerated because configuration files disagree on it, and the discovered
    # value is what ID tokens are compared with afterwards.
    return expected.rstrip("/") == actual.rstrip("/")


def _string_array(meta: Mapping[str, Any], key: str, issuer: str) -> tuple[str, ...] | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DiscoveryError(
            f"The discovery document of {issuer} has a malformed {key!r} (must be an array "
            "of strings).",
            phase="discovery",
            reason="metadata_type_invalid",
        )
    return tuple(value)


def provider_from_metadata(
    meta: Mapping[str, Any],
    *,
    issuer: str,
    name: str,
    http: HttpPolicy,
    http_client: HttpClient | None = None,
    id_token_algs: Iterable[str] = DEFAULT_ID_TOKEN_ALGS,
    tenant_independent: bool = False,
    extra_auth_params: Mapping[str, str] | None = None,
) -> OAuthProvider:
    """Validate a discovery document and build the provider it describes.

    :param meta: The parsed discovery document.
    :param issuer: The issuer that was asked for.
    :raises DiscoveryError: When the document cannot be trusted or used.
    """

    def fail(message: str, reason: str) -> DiscoveryError:
        return DiscoveryError(message, phase="discovery", reason=reason)

    found = meta.get("issuer")
    if not isinstance(found, str) or not found:
        raise fail(f"The discovery document of {issuer} has no issuer.", "issuer_missing")
    if not _same_issuer(issuer, found):
        raise fail(
            f"The discovery document of {issuer} names another issuer ({found}); refusing it "
            "(OpenID Connect Discovery §4.3).",
            "issuer_mismatch",
        )
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(meta.get(key), str):
            raise fail(f"The discovery document of {issuer} lacks {key!r}.", "metadata_missing")
    arrays = {key: _string_array(meta, key, issuer) for key in _STRING_ARRAYS}
    if "code" not in (arrays["response_types_supported"] or ()):
        raise fail(
            f"{issuer} does not support the authorization code flow (response_types_supported "
            "lacks 'code').",
            "code_flow_unsupported",
        )
    if not arrays["subject_types_supported"]:
        raise fail(f"{issuer} advertises no subject_types_supported.", "metadata_missing")
    advertised_algs = arrays["id_token_signing_alg_values_supported"]
    if not advertised_algs:
        raise fail(
            f"{issuer} advertises no id_token_signing_alg_values_supported.", "metadata_missing"
        )
    algs = tuple(a for a in id_token_algs if a in advertised_algs)
    if not algs:
        raise fail(
            f"None of the ID-token algorithms {list(id_token_algs)} is advertised by {issuer} "
            f"({list(advertised_algs)}); no fallback is made.",
            "no_common_alg",
        )
    pkce = arrays["code_challenge_methods_supported"]
    if pkce is not None and "S256" not in pkce:
        raise fail(
            f"{issuer} does not advertise PKCE S256 (code_challenge_methods_supported="
            f"{list(pkce)}); downgrading to 'plain' is refused.",
            "pkce_s256_unsupported",
        )

    def optional_url(key: str) -> str | None:
        value = meta.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise fail(f"{issuer} has a malformed {key!r}.", "metadata_type_invalid")
        return value

    iss_param = meta.get("authorization_response_iss_parameter_supported", False)
    par_required = meta.get("require_pushed_authorization_requests", False)
    if not isinstance(iss_param, bool) or not isinstance(par_required, bool):
        raise fail(f"{issuer} has a malformed boolean metadata member.", "metadata_type_invalid")
    try:
        return OAuthProvider(
            name=name,
            issuer=found,
            authorization_endpoint=meta["authorization_endpoint"],
            token_endpoint=meta["token_endpoint"],
            jwks_uri=meta["jwks_uri"],
            userinfo_endpoint=optional_url("userinfo_endpoint"),
            revocation_endpoint=optional_url("revocation_endpoint"),
            introspection_endpoint=optional_url("introspection_endpoint"),
            pushed_authorization_request_endpoint=optional_url(
                "pushed_authorization_request_endpoint"
            ),
            end_session_endpoint=optional_url("end_session_endpoint"),
            par_required=par_required,
            iss_parameter_supported=iss_param,
            response_modes_supported=arrays["response_modes_supported"] or ("query", "fragment"),
            token_endpoint_auth_methods_supported=arrays["token_endpoint_auth_methods_supported"]
            or ("client_secret_basic",),
            id_token_algs=algs,
            tenant_independent=tenant_independent,
            extra_auth_params=dict(extra_auth_params or {}),
            http=http,
            http_client=http_client,
        )
    except DiscoveryError:
        raise
    except ConfigError as exc:
        raise fail(f"{issuer} discovery: {exc.message}", "endpoint_rejected") from None


def oidc_discover(
    issuer: str,
    *,
    name: str | None = None,
    allow_insecure_loopback: bool = False,
    allowed_hosts: Iterable[str] = (),
    timeout: float = 5.0,
    id_token_algs: Iterable[str] = DEFAULT_ID_TOKEN_ALGS,
    http_client: HttpClient | None = None,
    tenant_independent: bool = False,
    extra_auth_params: Mapping[str, str] | None = None,
) -> OAuthProvider:
    """Build an :class:`OAuthProvider` from the issuer's discovery document.

    :param issuer: The issuer identifier (a full ``.well-known`` URL is accepted).
    :param name: Label for telemetry; defaults to the issuer's host.
    :param allow_insecure_loopback: Accept an ``http`` issuer on a loopback host.
    :param allowed_hosts: Hosts the provider's endpoints may live on.
    :param timeout: Seconds for each outbound call.
    :param id_token_algs: Algorithms you accept; intersected with the advertised ones.
    :param http_client: An HTTP client to share (tests inject a transport here).
    :raises DiscoveryError: When discovery answers with an error or with metadata
        that cannot be trusted.
    :raises TransportError: When the discovery endpoint cannot be reached, times
        out, redirects or answers with an oversized body.
    :raises ConfigError: When ``issuer`` itself is unacceptable.
    """
    issuer = _normalise_issuer(issuer)
    policy = HttpPolicy(
        timeout=timeout,
        allowed_hosts=tuple(allowed_hosts),
        allow_insecure_loopback=allow_insecure_loopback,
    )
    check_endpoint_url(
        issuer.replace("{tenantid}", "tenant") if tenant_independent else issuer,
        what="issuer",
        allow_insecure_loopback=allow_insecure_loopback,
        allowed_hosts=policy.allowed_hosts,
    )
    if "?" in issuer or "#" in issuer:
        raise ConfigError("The issuer must not carry a query or fragment.")
    client = http_client or HttpClient(policy)
    label = name or (issuer.split("//", 1)[-1].split("/", 1)[0])
    url = issuer.rstrip("/") + WELL_KNOWN
    with spans.span(
        spans.DISCOVERY,
        {
            attr.OAUTH_PROVIDER_NAME: label,
            attr.OAUTH_PROVIDER_ISSUER: issuer,
            attr.OAUTH_PHASE: "discovery",
        },
    ):
        response = client.request(
            "GET",
            url,
            span_name=spans.DISCOVERY_HTTP,
            phase="discovery",
            what="discovery endpoint",
            headers={"Accept": "application/json"},
        )
        if not response.ok:
            audit.emit(
                audit.HTTP_ERROR,
                provider=label,
                issuer=issuer,
                phase="discovery",
                status=f"http_{response.status}",
                body_digest=digest(response.content),
            )
            raise DiscoveryError(
                f"Discovery at {url} answered HTTP {response.status}.",
                phase="discovery",
                reason="http_error",
            )
        if response.content_type != "application/json":
            raise DiscoveryError(
                f"Discovery at {url} did not answer with application/json.",
                phase="discovery",
                reason="content_type_invalid",
            )
        try:
            meta = parse_json_object(response.content)
        except (ValueError, UnicodeDecodeError):
            raise DiscoveryError(
                f"Discovery at {url} did not answer with a JSON object (duplicate members "
                "are refused).",
                phase="discovery",
                reason="json_invalid",
            ) from None
        expected = issuer
        if tenant_independent:
            expected = _tenant_template(issuer)
        return provider_from_metadata(
            meta,
            issuer=expected,
            name=label,
            http=policy,
            http_client=client,
            id_token_algs=id_token_algs,
            tenant_independent=tenant_independent,
            extra_auth_params=extra_auth_params,
        )


def _tenant_template(issuer: str) -> str:
    # Microsoft Entra's multi-tenant metadata names ``{tenantid}`` in place of
    # ``common`` / ``organizations``; the tenant is then taken from each token.
    for segment in ("/common/", "/organizations/"):
        if segment in issuer:
            return issuer.replace(segment, "/{tenantid}/")
    return issuer
