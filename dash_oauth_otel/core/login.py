"""Starting a login: :func:`prepare_call`.

RFC 6749 §4.1.1, RFC 7636 (PKCE), RFC 9126 (PAR), OpenID Connect Core §3.1.2.

:func:`prepare_call` mints state, PKCE verifier and nonce, keeps the one-time
values in the state store and returns the URL to send the browser to.  The
callback side is :mod:`dash_oauth_otel.core.callback`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlencode

from dash_oauth_otel.core import pkce
from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core._ops import note_failure
from dash_oauth_otel.core._ops import propagator
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.state import browser_digest
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.state import seal_state
from dash_oauth_otel.core.state import state_store_key
from dash_oauth_otel.core.state import store_one_time
from dash_oauth_otel.core.state import take_one_time
from dash_oauth_otel.core.token_endpoint import authenticated_post
from dash_oauth_otel.core.token_endpoint import raise_for_error
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import PushedAuthorizationError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import new_trace_id
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.redact import digest

__all__ = ["AuthorizationRequest", "prepare_call"]


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and how to find this login in telemetry.

    :param url: The authorization URL (it carries no secret).
    :param trace_id: The login's correlation id.
    :param par_used: Whether the request was pushed (RFC 9126).
    :param expires_at: When the login state expires (epoch seconds).
    :param state_key: The store key of the login's one-time values (a hash of
        the state), so that a caller can drop a login it no longer wants.
    """

    url: str
    trace_id: str
    par_used: bool
    expires_at: float
    state_key: str = ""


def prepare_call(
    client: OAuthClient,
    browser_token: str,
    *,
    app_data: Mapping[str, str] | None = None,
    max_age: int | None = None,
) -> AuthorizationRequest:
    """Start a login: mint state, PKCE and nonce, and build the authorization URL.

    :param client: The client.
    :param browser_token: The browser-binding token (from an HttpOnly cookie);
        the callback must present the same one.
    :param app_data: Small string values sealed into the state for the app
        (e.g. the return-to path); tamper-proof, returned by the callback.
    :param max_age: Overrides the client's ``max_age`` for this login (``0``
        forces re-authentication).
    :raises InputError: The browser token is malformed.
    :raises StoreError: The state store failed.
    :raises PushedAuthorizationError: The PAR endpoint refused the request.
    """
    check_browser_token(browser_token)
    max_age = client.max_age if max_age is None else max_age
    trace_id = new_trace_id()
    with (
        trace_id_scope(trace_id),
        spans.span(
            spans.LOGIN_REQUEST,
            {
                **client.telemetry_attributes(),
                attr.OAUTH_PHASE: "login.request",
                attr.OAUTH_USED_PKCE: True,
                attr.OAUTH_NONCE_ENABLED: client.provider.is_oidc,
                attr.OAUTH_SCOPES_REQUESTED: " ".join(client.scopes),
                attr.OAUTH_SCOPES_REQUESTED_COUNT: len(client.scopes),
                attr.OAUTH_MAX_AGE_REQUESTED: max_age,
                attr.OAUTH_PAR_USED: client.uses_par,
                attr.OAUTH_EXTRA_AUTH_PARAMS_COUNT: len(client.extra_auth_params)
                + len(client.provider.extra_auth_params),
                attr.OAUTH_RESPONSE_MODE: client.response_mode,
            },
            root=True,
        ),
    ):
        try:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            sealed, payload = seal_state(
                client, trace_id=trace_id, max_age=max_age, otel=carrier, app=app_data
            )
            verifier = pkce.create_code_verifier()
            nonce = secrets.token_urlsafe(24) if client.provider.is_oidc else None
            store_one_time(
                client, payload, OneTimeValues(verifier, nonce, browser_digest(browser_token))
            )
            params = _authorization_params(client, sealed, verifier, nonce, max_age)
            if client.uses_par:
                try:
                    url = _push(client, params)
                except DashOAuthError:
                    # Nothing can complete this login: its one-time values go
                    # now instead of at their expiry.
                    with suppress(DashOAuthError):
                        take_one_time(client, payload)
                    raise
            else:
                url = _join(client.provider.authorization_endpoint, params)
            audit.emit(
                audit.AUDIT_REDIRECT_ISSUED,
                **client.audit_fields(),
                state_digest=digest(payload.state),
                browser_token_digest=digest(browser_token),
                pkce_method=pkce.S256,
                par_used=client.uses_par,
                nonce_present=nonce is not None,
                scopes_count=len(client.scopes),
                redirect_uri=client.redirect_uri,
            )
            return AuthorizationRequest(
                url=url,
                trace_id=trace_id,
                par_used=client.uses_par,
                expires_at=payload.issued_at + client.state_ttl,
                state_key=state_store_key(payload.state),
            )
        except DashOAuthError as exc:
            note_failure(exc, trace_id, "login.request")
            raise


def _authorization_params(
    client: OAuthClient, sealed: str, verifier: str, nonce: str | None, max_age: int | None
) -> dict[str, str]:
    params: dict[str, str] = {
        **client.provider.extra_auth_params,
        **client.extra_auth_params,
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": " ".join(client.scopes),
        "state": sealed,
        "code_challenge": pkce.s256_challenge(verifier),
        "code_challenge_method": pkce.S256,
    }
    if nonce is not None:
        params["nonce"] = nonce
    if max_age is not None:
        params["max_age"] = str(max_age)
    if client.response_mode is not None:
        params["response_mode"] = client.response_mode
    return params


def _join(endpoint: str, params: Mapping[str, str]) -> str:
    separator = "&" if "?" in endpoint else "?"
    return endpoint + separator + urlencode(params)


def _push(client: OAuthClient, params: Mapping[str, str]) -> str:
    """RFC 9126 §2: push the request; the browser gets only ``client_id`` and ``request_uri``."""
    provider = client.provider
    assert provider.pushed_authorization_request_endpoint is not None  # noqa: S101
    with spans.span(
        spans.LOGIN_PAR,
        {
            **client.telemetry_attributes(),
            attr.OAUTH_PHASE: "login.par",
            attr.OAUTH_CLIENT_AUTH_STYLE: client.auth_style,
            attr.OAUTH_EXTRA_AUTH_PARAMS_COUNT: len(client.extra_auth_params)
            + len(provider.extra_auth_params),
            attr.OAUTH_EXTRA_TOKEN_HEADERS_COUNT: len(provider.extra_token_headers),
        },
    ):
        # RFC 9126 §2.1: the pushed body holds every authorization parameter,
        # client_id included, next to the client authentication.
        response = authenticated_post(
            client,
            provider.pushed_authorization_request_endpoint,
            params,
            span_name=spans.LOGIN_PAR_HTTP,
            phase="login.par",
            what=f"{provider.name} PAR endpoint",
        )
        raise_for_error(
            client,
            response,
            phase="login.par",
            what="PAR endpoint",
            error_class=PushedAuthorizationError,
        )
        try:
            data = parse_json_object(response.content)
        except (ValueError, UnicodeDecodeError):
            data = {}
        request_uri = data.get("request_uri")
        if not isinstance(request_uri, str) or not 0 < len(request_uri) <= 2048:
            raise PushedAuthorizationError(
                "The PAR endpoint answered without a usable request_uri.",
                status=response.status,
                phase="login.par",
                reason="par_response_invalid",
            )
        return _join(
            provider.authorization_endpoint,
            {"client_id": client.client_id, "request_uri": request_uri},
        )
