"""Token lifecycle: refresh, revocation and introspection.

RFC 6749 §6 (refresh), OpenID Connect Core §12 (refresh with ID tokens),
RFC 7009 (revocation), RFC 7662 (introspection).

Refresh is never retried (a refresh token may be single-use under rotation).
Revocation and introspection are best-effort: they report a status instead of
raising, so logout and session end always complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.core.token_endpoint import authenticated_post
from dash_oauth_otel.core.token_endpoint import parse_token_response
from dash_oauth_otel.core.token_endpoint import raise_for_error
from dash_oauth_otel.core.verify import token_response_attributes
from dash_oauth_otel.core.verify import verify_token_response
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.metrics import record_counter
from dash_oauth_otel.telemetry.metrics import record_failure
from dash_oauth_otel.telemetry.redact import digest

REFRESH_ERROR = "token_refresh_error"
"""The wire code of a refresh the token endpoint refused or answered badly."""

__all__ = [
    "REFRESH_ERROR",
    "IntrospectionResult",
    "RevocationResult",
    "TokenKind",
    "introspect_token",
    "refresh_token",
    "revoke_token",
]

TokenKind = Literal["access", "refresh"]


@dataclass(frozen=True)
class RevocationResult:
    """Outcome of a best-effort revocation.

    :param supported: The provider has a revocation endpoint.
    :param revoked: The provider confirmed the revocation (HTTP 200).
    :param status: ``ok``, ``revocation_unsupported``, ``missing_token``,
        ``http_<code>`` or ``transport_error``.
    """

    supported: bool
    revoked: bool
    status: str


@dataclass(frozen=True)
class IntrospectionResult:
    """Outcome of a best-effort introspection.

    :param supported: The provider has an introspection endpoint.
    :param active: The token is active (``False`` on any failure).
    :param status: ``ok``, ``introspection_unsupported``, ``missing_token``,
        ``http_<code>``, ``invalid_json``, ``invalid_active`` or ``transport_error``.
    :param claims: The introspection response (only when ``status == "ok"``).
    """

    supported: bool
    active: bool
    status: str
    claims: Mapping[str, Any] = field(default_factory=dict)


def refresh_token(client: OAuthClient, token: OAuthToken) -> OAuthToken:
    """Exchange the refresh token for a new token set (never retried).

    The refresh token is replaced when the provider rotates it and kept
    otherwise; a new ID token must continue the original one (same ``iss``,
    ``sub``, ``aud``, ``auth_time``); userinfo is fetched again when configured.

    :raises InputError: ``token`` has no refresh token.
    :raises TokenEndpointError: The provider refused (e.g. ``invalid_grant``).
    :raises IDTokenError: The new ID token is invalid or discontinuous.
    """
    provider = client.provider
    with (
        trace_id_scope() as tid,
        spans.span(
            spans.REFRESH,
            {
                **client.telemetry_attributes(),
                attr.OAUTH_PHASE: "refresh",
                attr.OAUTH_ASYNC: False,
                attr.OAUTH_CLIENT_AUTH_STYLE: client.auth_style,
                attr.OAUTH_EXTRA_TOKEN_PARAMS_COUNT: len(client.extra_token_params),
                attr.OAUTH_EXTRA_TOKEN_HEADERS_COUNT: len(provider.extra_token_headers),
            },
        ) as current,
    ):
        try:
            if not token.refresh_token:
                raise InputError(
                    "This session has no refresh token; sign in again.",
                    reason="refresh_token_missing",
                )
            response = authenticated_post(
                client,
                provider.token_endpoint,
                {
                    **client.extra_token_params,
                    "grant_type": "refresh_token",
                    "refresh_token": token.refresh_token,
                },
                span_name=spans.TOKEN_EXCHANGE_HTTP,
                phase="refresh",
                what=f"{provider.name} token endpoint",
            )
            raise_for_error(client, response, phase="refresh", what="token endpoint")
            parsed = parse_token_response(response, phase="refresh")
            spans.set_attributes(
                current, token_response_attributes(parsed, token.granted_scopes or client.scopes)
            )
            new = verify_token_response(client, parsed, phase="refresh.verify", original=token)
        except DashOAuthError as exc:
            exc.trace_id = exc.trace_id or tid
            exc.phase = exc.phase or "refresh"
            if isinstance(exc, TokenEndpointError):
                # The token endpoint refused a refresh, not a code exchange.
                exc.error = REFRESH_ERROR
            record_failure(exc.phase, type(exc).__qualname__)
            record_counter("refreshes", {"outcome": "failure"})
            raise
        rotated = parsed.refresh_token is not None and parsed.refresh_token != token.refresh_token
        audit.emit(
            audit.AUDIT_TOKEN_REFRESH,
            **client.audit_fields(),
            refresh_token_rotated=rotated,
            sub_digest=digest(new.subject),
            new_expires_at=new.expires_at,
            expires_in_present=parsed.expires_in_present,
        )
        record_counter("refreshes", {"outcome": "success"})
        return new


def _token_of(token: OAuthToken, which: TokenKind) -> str | None:
    if which not in ("access", "refresh"):
        raise InputError("which must be 'access' or 'refresh'.", reason="which_invalid")
    return token.access_token if which == "access" else token.refresh_token


def revoke_token(
    client: OAuthClient, token: OAuthToken, which: TokenKind = "refresh"
) -> RevocationResult:
    """Revoke the access or refresh token at the provider (best effort, RFC 7009).

    Never raises for provider or network failures; the result says what happened.
    """
    provider = client.provider
    value = _token_of(token, which)
    with (
        trace_id_scope(),
        spans.span(
            spans.TOKEN_REVOKE,
            {
                **client.telemetry_attributes(),
                attr.OAUTH_PHASE: "token.revoke",
                attr.OAUTH_ASYNC: False,
                attr.OAUTH_TOKEN_WHICH: which,
                attr.OAUTH_CLIENT_AUTH_STYLE: client.auth_style,
                # Only the token and its hint are sent, with the token endpoint's headers.
                attr.OAUTH_EXTRA_TOKEN_PARAMS_COUNT: 0,
                attr.OAUTH_EXTRA_TOKEN_HEADERS_COUNT: len(client.provider.extra_token_headers),
            },
        ) as current,
    ):
        if provider.revocation_endpoint is None:
            result = RevocationResult(False, False, "revocation_unsupported")
        elif not value:
            result = RevocationResult(True, False, "missing_token")
        else:
            try:
                response = authenticated_post(
                    client,
                    provider.revocation_endpoint,
                    {"token": value, "token_type_hint": f"{which}_token"},
                    span_name=spans.TOKEN_REVOKE_HTTP,
                    phase="token.revoke",
                    what=f"{provider.name} revocation endpoint",
                )
                # RFC 7009 §2.2: HTTP 200 whether or not the token was valid.
                status = "ok" if response.status == 200 else f"http_{response.status}"
                result = RevocationResult(True, response.status == 200, status)
            except DashOAuthError:
                result = RevocationResult(True, False, "transport_error")
        spans.set_attributes(
            current,
            {
                attr.OAUTH_SUPPORTED: result.supported,
                attr.OAUTH_REVOKED: result.revoked,
                attr.OAUTH_STATUS: result.status,
            },
        )
        audit.emit(
            audit.AUDIT_TOKEN_REVOCATION,
            **client.audit_fields(),
            which=which,
            supported=result.supported,
            revoked=result.revoked,
            status=result.status,
        )
        record_counter("revocations", {"oauth.token.which": which, "oauth.status": result.status})
        return result


def introspect_token(
    client: OAuthClient, token: OAuthToken, which: TokenKind = "access"
) -> IntrospectionResult:
    """Ask the provider whether a token is active (best effort, RFC 7662).

    ``active`` must be a JSON boolean (§2.2); anything else counts as inactive
    with status ``invalid_active``.  Never raises for provider or network failures.
    """
    value = _token_of(token, which)
    with (
        trace_id_scope(),
        spans.span(
            spans.TOKEN_INTROSPECT,
            {
                **client.telemetry_attributes(),
                attr.OAUTH_PHASE: "token.introspect",
                attr.OAUTH_ASYNC: False,
                attr.OAUTH_TOKEN_WHICH: which,
                attr.OAUTH_CLIENT_AUTH_STYLE: client.auth_style,
                # Only the token and its hint are sent, with the token endpoint's headers.
                attr.OAUTH_EXTRA_TOKEN_PARAMS_COUNT: 0,
                attr.OAUTH_EXTRA_TOKEN_HEADERS_COUNT: len(client.provider.extra_token_headers),
            },
        ) as current,
    ):
        result = _introspect(client, which, value)
        spans.set_attributes(
            current,
            {
                attr.OAUTH_SUPPORTED: result.supported,
                attr.OAUTH_ACTIVE: result.active,
                attr.OAUTH_STATUS: result.status,
            },
        )
        sub = result.claims.get("sub")
        audit.emit(
            audit.AUDIT_TOKEN_INTROSPECTION,
            **client.audit_fields(),
            which=which,
            supported=result.supported,
            active=result.active,
            status=result.status,
            sub_digest=digest(sub) if isinstance(sub, str) else None,
        )
        return result


def _introspect(client: OAuthClient, which: TokenKind, value: str | None) -> IntrospectionResult:
    provider = client.provider
    if provider.introspection_endpoint is None:
        return IntrospectionResult(False, False, "introspection_unsupported")
    if not value:
        return IntrospectionResult(True, False, "missing_token")
    try:
        response = authenticated_post(
            client,
            provider.introspection_endpoint,
            {"token": value, "token_type_hint": f"{which}_token"},
            span_name=spans.TOKEN_INTROSPECT_HTTP,
            phase="token.introspect",
            what=f"{provider.name} introspection endpoint",
        )
    except DashOAuthError:
        return IntrospectionResult(True, False, "transport_error")
    if not response.ok:
        return IntrospectionResult(True, False, f"http_{response.status}")
    try:
        data = parse_json_object(response.content)
    except (ValueError, UnicodeDecodeError):
        return IntrospectionResult(True, False, "invalid_json")
    active = data.get("active")
    if not isinstance(active, bool):
        return IntrospectionResult(True, False, "invalid_active")
    return IntrospectionResult(True, active, "ok", data)
