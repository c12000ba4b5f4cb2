"""The authorization code exchange.

RFC 6749 §4.1.3 and §4.1.4, RFC 7636 §4.5 (``code_verifier``).

The code is sent once: an exchange is never retried, whatever the failure.
"""

from __future__ import annotations

from opentelemetry import context as otel_context

from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.lifecycle import revoke_token
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.core.token_endpoint import TokenResponse
from dash_oauth_otel.core.token_endpoint import authenticated_post
from dash_oauth_otel.core.token_endpoint import parse_token_response
from dash_oauth_otel.core.token_endpoint import raise_for_error
from dash_oauth_otel.core.verify import token_response_attributes
from dash_oauth_otel.core.verify import verify_token_response
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.redact import digest

__all__ = ["exchange_code"]


def exchange_code(
    client: OAuthClient, code: str, values: OneTimeValues, max_age: int | None
) -> OAuthToken:
    """Exchange ``code`` with the one-time values of its login; verify the result.

    :raises TokenEndpointError: The provider refused or answered badly.
    :raises IDTokenError, NonceError, UserinfoError: Verification failed.
    """
    provider = client.provider
    code_digest = digest(code)
    # The callback (or, in a worker, callback.worker): the ID-token stage of
    # the callback validation is opened under it, with the other stages.
    callback_context = otel_context.get_current()
    with spans.span(
        spans.TOKEN_EXCHANGE,
        {
            **client.telemetry_attributes(),
            attr.OAUTH_PHASE: "token.exchange",
            attr.OAUTH_USED_PKCE: True,
            attr.OAUTH_CLIENT_AUTH_STYLE: client.auth_style,
            attr.OAUTH_EXTRA_TOKEN_PARAMS_COUNT: len(client.extra_token_params),
            attr.OAUTH_EXTRA_TOKEN_HEADERS_COUNT: len(provider.extra_token_headers),
        },
    ) as current:
        form = {
            **client.extra_token_params,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": values.code_verifier,
        }
        try:
            response = authenticated_post(
                client,
                provider.token_endpoint,
                form,
                span_name=spans.TOKEN_EXCHANGE_HTTP,
                phase="token.exchange",
                what=f"{provider.name} token endpoint",
            )
            raise_for_error(client, response, phase="token.exchange", what="token endpoint")
            parsed = parse_token_response(response, phase="token.exchange")
        except DashOAuthError as exc:
            audit.emit(
                audit.AUDIT_TOKEN_EXCHANGE_ERROR,
                **client.audit_fields(),
                code_digest=code_digest,
                error_class=type(exc).__qualname__,
                reason=exc.reason,
            )
            raise
        spans.set_attributes(current, token_response_attributes(parsed, client.scopes))
        audit.emit(
            audit.AUDIT_TOKEN_EXCHANGE,
            **client.audit_fields(),
            code_digest=code_digest,
            used_pkce=True,
            received_id_token=parsed.id_token is not None,
            received_refresh_token=parsed.refresh_token is not None,
            expires_in_present=parsed.expires_in_present,
        )
    try:
        return verify_token_response(
            client,
            parsed,
            phase="callback.verify",
            nonce=values.nonce,
            max_age=max_age,
            stage_parent=callback_context,
        )
    except DashOAuthError:
        # The provider issued tokens this login will never use: revoke them.
        _discard_unverified(client, parsed)
        raise


def _discard_unverified(client: OAuthClient, parsed: TokenResponse) -> None:
    token = OAuthToken(access_token=parsed.access_token, refresh_token=parsed.refresh_token)
    if parsed.refresh_token:
        revoke_token(client, token, "refresh")
    revoke_token(client, token, "access")
