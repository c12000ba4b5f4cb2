"""Verification of a token response before anything is trusted from it.

OpenID Connect Core §3.1.3.5 to §3.1.3.8 (code flow), §12.2 (refresh).

Used by the code exchange and by refresh: scope reconciliation, ID-token
validation (or continuity with the original ID token on refresh), and userinfo
with its subject bound to the ID token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.id_token import check_refresh_continuity
from dash_oauth_otel.core.id_token import validate_id_token
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.core.token_endpoint import TokenResponse
from dash_oauth_otel.core.userinfo import fetch_userinfo
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import NonceError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans

__all__ = ["token_response_attributes", "verify_token_response"]


def token_response_attributes(
    response: TokenResponse, fallback_scopes: tuple[str, ...]
) -> dict[str, AttributeValue]:
    """Span attributes describing a usable token response (never a token).

    :param fallback_scopes: The scopes granted when the response states none
        (RFC 6749 §5.1: then the requested ones, or on refresh the original grant).
    """
    granted = response.scope if response.scope is not None else fallback_scopes
    return {
        attr.OAUTH_TOKEN_TYPE: response.token_type,
        attr.OAUTH_RECEIVED_ID_TOKEN: response.id_token is not None,
        attr.OAUTH_RECEIVED_REFRESH_TOKEN: response.refresh_token is not None,
        attr.OAUTH_EXPIRES_IN_PRESENT: response.expires_in_present,
        # No lifetime is ever assumed: without expires_in the expiry stays unknown.
        attr.OAUTH_EXPIRES_IN_SYNTHESIZED: response.expires_at is not None
        and not response.expires_in_present,
        attr.OAUTH_SCOPE_PRESENT: response.scope is not None,
        attr.OAUTH_SCOPES_GRANTED: " ".join(granted),
    }


def verify_token_response(
    client: OAuthClient,
    response: TokenResponse,
    *,
    phase: str,
    nonce: str | None = None,
    max_age: int | None = None,
    original: OAuthToken | None = None,
    stage_parent: otel_context.Context | None = None,
) -> OAuthToken:
    """Validate ``response`` and build the :class:`OAuthToken`.

    :param phase: ``callback.verify`` or ``refresh.verify``.
    :param nonce: The nonce sent with the authorization request (login only).
    :param max_age: The ``max_age`` requested (``auth_time`` then checked).
    :param original: The token being refreshed (refresh only).
    :param stage_parent: The context of the callback: the ID-token validation
        stage (``callback.nonce_validation``) is opened under it, next to the
        other callback stages; on refresh it stays under ``token.verify``.
    :raises IDTokenError: An ID token is missing where required or invalid.
    :raises NonceError: The ID token's nonce does not match.
    :raises UserinfoError: Userinfo is unusable or about another user.
    """
    provider = client.provider
    refresh = original is not None
    oidc = provider.is_oidc and "openid" in client.scopes
    granted = (
        response.scope
        if response.scope is not None
        else (original.granted_scopes if original is not None else client.scopes)
    )
    with spans.span(
        spans.TOKEN_VERIFY,
        {
            **client.telemetry_attributes(),
            attr.OAUTH_PHASE: phase,
            attr.OAUTH_REFRESH_FLOW: refresh,
            attr.OAUTH_RECEIVED_ID_TOKEN: response.id_token is not None,
            attr.OAUTH_RECEIVED_REFRESH_TOKEN: response.refresh_token is not None,
            attr.OAUTH_ID_TOKEN_REQUIRED: oidc and not refresh,
            attr.OAUTH_ID_TOKEN_PRESENT: response.id_token is not None,
            attr.OAUTH_NONCE_REQUIRED: oidc and not refresh and nonce is not None,
            attr.OAUTH_SCOPES_REQUESTED: " ".join(client.scopes),
            attr.OAUTH_SCOPES_REQUESTED_COUNT: len(client.scopes),
            attr.OAUTH_SCOPES_GRANTED: " ".join(granted),
            attr.OAUTH_SCOPES_GRANTED_COUNT: len(granted),
        },
    ) as current:
        claims: Mapping[str, Any] | None = original.id_token_claims if original else None
        id_token = original.id_token if original else None
        validated = original.id_token_validated if original else False
        if oidc and response.id_token is None and not refresh:
            raise IDTokenError(
                "The provider returned no ID token for an OpenID Connect login.",
                phase=phase,
                reason="id_token_missing",
            )
        if oidc and response.id_token is not None:
            with spans.span(
                spans.CALLBACK_VALIDATE,
                {
                    **client.telemetry_attributes(),
                    attr.OAUTH_PHASE: "refresh.id_token_validation"
                    if refresh
                    else "callback.nonce_validation",
                },
                parent=None if refresh else stage_parent,
                link_current=False,
            ):
                new_claims = _validate(client, response, nonce=nonce, max_age=max_age, phase=phase)
                if original is not None:
                    if original.id_token_claims is None:
                        raise IDTokenError(
                            "A refresh returned an ID token but the session has none to "
                            "compare it with.",
                            phase=phase,
                            reason="refresh_continuity_missing_original",
                        )
                    try:
                        check_refresh_continuity(original.id_token_claims, new_claims)
                    except IDTokenError as exc:
                        exc.phase = exc.phase or phase
                        raise
            claims, id_token, validated = new_claims, response.id_token, True
        spans.set_attributes(current, {attr.OAUTH_ID_TOKEN_VALIDATED: validated})
        userinfo = original.userinfo if original else None
        if client.fetch_userinfo and provider.userinfo_endpoint is not None:
            expected = claims.get("sub") if claims else None
            userinfo = fetch_userinfo(client, response.access_token, expected_sub=expected)
        return OAuthToken(
            access_token=response.access_token,
            token_type=response.token_type,
            refresh_token=response.refresh_token
            or (original.refresh_token if original is not None else None),
            id_token=id_token,
            expires_at=response.expires_at,
            granted_scopes=tuple(granted),
            id_token_claims=dict(claims) if claims else None,
            userinfo=userinfo,
            id_token_validated=validated,
            obtained_at=time.time(),
        )


def _validate(
    client: OAuthClient,
    response: TokenResponse,
    *,
    nonce: str | None,
    max_age: int | None,
    phase: str,
) -> dict[str, Any]:
    provider = client.provider
    assert provider.issuer is not None and response.id_token is not None  # noqa: S101
    try:
        return validate_id_token(
            response.id_token,
            keys=provider.jwks,
            issuer=provider.issuer,
            client_id=client.client_id,
            allowed_algs=provider.id_token_algs,
            nonce=nonce,
            now=time.time(),
            leeway=provider.leeway,
            max_lifetime=provider.max_id_token_lifetime,
            max_age=max_age,
            access_token=response.access_token,
            tenant_independent=provider.tenant_independent,
        )
    except (IDTokenError, NonceError) as exc:
        exc.phase = exc.phase or phase
        raise
