"""The authorization code flow: :func:`prepare_call` and :func:`handle_callback`.

RFC 6749 §4.1, RFC 7636 (PKCE), RFC 9126 (PAR), RFC 9207 (``iss``), RFC 9700
(security BCP), OpenID Connect Core §3.1.

:func:`prepare_call` mints state, PKCE verifier and nonce, keeps the one-time
values in the state store and returns the URL to send the browser to.
:func:`handle_callback` validates the callback in a fixed order — shape and
sizes, ``iss``, sealed state, store lookup, browser binding, atomic
consumption — and only then looks at a provider error or exchanges the code.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dash_oauth_otel.core import pkce
from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.state import browser_digest
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.state import peek_one_time
from dash_oauth_otel.core.state import same_browser
from dash_oauth_otel.core.state import seal_state
from dash_oauth_otel.core.state import store_one_time
from dash_oauth_otel.core.state import take_one_time
from dash_oauth_otel.core.state import verify_binding
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.core.token_endpoint import authenticated_post
from dash_oauth_otel.core.token_endpoint import parse_token_response
from dash_oauth_otel.core.token_endpoint import raise_for_error
from dash_oauth_otel.core.token_endpoint import safe_oauth_error
from dash_oauth_otel.core.verify import verify_token_response
from dash_oauth_otel.errors import AuthorizationError
from dash_oauth_otel.errors import CallbackIssuerError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import new_trace_id
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.metrics import record_failure
from dash_oauth_otel.telemetry.metrics import record_login
from dash_oauth_otel.telemetry.redact import digest

__all__ = [
    "CALLBACK_LIMITS",
    "AuthorizationRequest",
    "complete_callback",
    "handle_callback",
    "prepare_call",
]

CALLBACK_LIMITS: Mapping[str, int] = {
    "code": 4096,
    "state": 8192,
    "iss": 2048,
    "error": 256,
    "error_description": 4096,
    "error_uri": 2048,
    "session_state": 1024,
}
"""Largest accepted length of each callback parameter (characters)."""
_OTHER_PARAM_LIMIT = 1024
_MAX_PARAMS = 16
_propagator = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and how to find this login in telemetry.

    :param url: The authorization URL (it carries no secret).
    :param trace_id: The login's correlation id.
    :param par_used: Whether the request was pushed (RFC 9126).
    :param expires_at: When the login state expires (epoch seconds).
    """

    url: str
    trace_id: str
    par_used: bool
    expires_at: float


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
    :raises TokenEndpointError: The PAR endpoint refused the request.
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
            _propagator.inject(carrier)
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
                url = _push(client, params)
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
            )
        except DashOAuthError as exc:
            _fail(exc, trace_id, "login.request")
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
        raise_for_error(client, response, phase="login.par", what="PAR endpoint")
        try:
            data = parse_json_object(response.content)
        except (ValueError, UnicodeDecodeError):
            data = {}
        request_uri = data.get("request_uri")
        if not isinstance(request_uri, str) or not 0 < len(request_uri) <= 2048:
            raise TokenEndpointError(
                "The PAR endpoint answered without a usable request_uri.",
                status=response.status,
                phase="login.par",
                reason="par_response_invalid",
            )
        return _join(
            provider.authorization_endpoint,
            {"client_id": client.client_id, "request_uri": request_uri},
        )


def _fail(exc: DashOAuthError, trace_id: str | None, phase: str) -> None:
    exc.trace_id = exc.trace_id or trace_id
    exc.phase = exc.phase or phase
    record_failure(exc.phase or phase, type(exc).__qualname__)


def _normalise_query(query: Mapping[str, Any] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Flatten a query mapping; duplicate members and odd shapes are refused."""
    pairs: list[tuple[str, Any]]
    if hasattr(query, "lists"):  # werkzeug MultiDict and friends
        pairs = [(k, v) for k, vs in query.lists() for v in (vs if len(vs) == 1 else [vs])]
    elif isinstance(query, Mapping):
        pairs = list(query.items())
    else:
        pairs = list(query)
    if len(pairs) > _MAX_PARAMS:
        raise InputError("The callback has too many parameters.", reason="too_many_params")
    out: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise InputError(
                    f"The callback repeats the parameter {str(key)[:32]!r}.",
                    reason="duplicate_param",
                )
            value = value[0]
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError("The callback parameters are malformed.", reason="param_type")
        if key in out:
            raise InputError(
                f"The callback repeats the parameter {key[:32]!r}.", reason="duplicate_param"
            )
        limit = CALLBACK_LIMITS.get(key, _OTHER_PARAM_LIMIT)
        if len(value) > limit or len(key) > 64:
            raise InputError(
                f"The callback parameter {key[:32]!r} is too large.", reason="param_too_large"
            )
        out[key] = value
    if "state" not in out or not out["state"]:
        raise InputError("The callback has no state.", reason="state_missing")
    if ("code" in out) == ("error" in out):
        raise InputError(
            "The callback must carry exactly one of code and error.", reason="callback_shape"
        )
    if "code" in out and not out["code"]:
        raise InputError("The callback has an empty code.", reason="callback_shape")
    return out


def _check_issuer(client: OAuthClient, params: Mapping[str, str]) -> None:
    """RFC 9207 §2.4: compare ``iss`` with the issuer, before any use of the state."""
    iss = params.get("iss")
    expected = client.provider.issuer
    if not client.enforces_issuer_parameter or expected is None:
        return
    if iss is None:
        audit.emit(
            audit.AUDIT_CALLBACK_ISS_MISSING,
            **client.audit_fields(),
            expected_issuer=expected,
            error_class="CallbackIssuerError",
        )
        raise CallbackIssuerError(
            "The callback carries no iss although the provider sends one (RFC 9207); it may "
            "come from another authorization server.",
            missing=True,
            phase="callback.issuer",
            reason="issuer_missing",
        )
    if iss != expected:
        audit.emit(
            audit.AUDIT_CALLBACK_ISS_MISMATCH,
            **client.audit_fields(),
            expected_issuer=expected,
            callback_issuer=iss[:256],
            error_class="CallbackIssuerError",
        )
        raise CallbackIssuerError(
            "The callback comes from another issuer than the configured provider (RFC 9207 "
            "mix-up defence).",
            missing=False,
            phase="callback.issuer",
            reason="issuer_mismatch",
        )


def handle_callback(
    client: OAuthClient,
    query: Mapping[str, Any] | Iterable[tuple[str, str]],
    browser_token: str,
) -> OAuthToken:
    """Validate a callback and exchange its code for tokens.

    :param client: The client that started the login.
    :param query: The callback parameters (query string or ``form_post`` body);
        a werkzeug ``MultiDict`` or a plain mapping.
    :param browser_token: The browser-binding token presented with the callback.
    :returns: The validated token set.
    :raises InputError: Malformed callback (shape, sizes, duplicates).
    :raises CallbackIssuerError: RFC 9207 ``iss`` missing or wrong.
    :raises StateError: State tampered, expired, replayed or bound elsewhere.
    :raises AuthorizationError: The provider answered with an error.
    :raises TokenEndpointError: The code exchange failed (never retried).
    :raises IDTokenError, NonceError, UserinfoError: Token validation failed.
    """
    result = complete_callback(client, query, browser_token)
    return result[0]


def complete_callback(
    client: OAuthClient,
    query: Mapping[str, Any] | Iterable[tuple[str, str]],
    browser_token: str,
) -> tuple[OAuthToken, Mapping[str, str]]:
    """Like :func:`handle_callback`, also returning the ``app_data`` sealed at login."""
    try:
        params = _normalise_query(query)
        _check_issuer(client, params)
    except DashOAuthError as exc:
        _reject_before_state(client, exc)
        raise
    payload = None
    early: StateError | None = None
    try:
        payload = open_state(client, params["state"])
    except StateError as exc:
        early = exc
    parent = _propagator.extract(dict(payload.otel or {})) if payload else None
    trace_id = payload.trace_id if payload else None
    with (
        trace_id_scope(trace_id) as tid,
        spans.span(
            spans.CALLBACK,
            {
                **client.telemetry_attributes(),
                attr.OAUTH_PHASE: "callback",
                attr.OAUTH_ASYNC: False,
                attr.OAUTH_USERINFO_REQUIRED: client.fetch_userinfo
                and client.provider.userinfo_endpoint is not None,
                attr.OAUTH_ID_TOKEN_VALIDATION_ENABLED: client.provider.is_oidc,
            },
            parent=parent if parent is not None else otel_context.Context(),
        ),
    ):
        try:
            return _callback(client, params, browser_token, payload, early)
        except DashOAuthError as exc:
            _fail(exc, tid, "callback")
            if not isinstance(exc, AuthorizationError):
                record_login(client.provider.name, "failure", None)
            raise


def _reject_before_state(client: OAuthClient, exc: DashOAuthError) -> None:
    exc.phase = exc.phase or "callback.query"
    if not isinstance(exc, CallbackIssuerError):
        audit.emit(
            audit.AUDIT_CALLBACK_QUERY_REJECTED,
            **client.audit_fields(),
            error_class=type(exc).__qualname__,
            reason=exc.reason,
        )
    record_failure(exc.phase, type(exc).__qualname__)


def _validate_stage(client: OAuthClient, phase: str) -> Any:
    return spans.span(
        spans.CALLBACK_VALIDATE, {**client.telemetry_attributes(), attr.OAUTH_PHASE: phase}
    )


def _callback(
    client: OAuthClient,
    params: Mapping[str, str],
    browser_token: str,
    payload: Any,
    early: StateError | None,
) -> tuple[OAuthToken, Mapping[str, str]]:
    state_digest = digest(payload.state) if payload else digest(params["state"])

    def failed(exc: DashOAuthError, phase: str) -> DashOAuthError:
        exc.phase = exc.phase or phase
        audit.emit(
            audit.AUDIT_CALLBACK_VALIDATION_FAILED,
            **client.audit_fields(),
            state_digest=state_digest,
            phase=exc.phase,
            error_class=type(exc).__qualname__,
            reason=exc.reason,
        )
        return exc

    with _validate_stage(client, "callback.state_payload"):
        if early is not None:
            audit.emit(
                audit.AUDIT_STATE_PARSE_FAILURE,
                phase="decrypt",
                reason=early.reason,
                token_digest=state_digest,
                token_length=len(params["state"]),
            )
            raise failed(early, "callback.state_payload")
        try:
            verify_binding(client, payload)
        except StateError as exc:
            raise failed(exc, "callback.state_payload") from None
    audit.emit(
        audit.AUDIT_CALLBACK_RECEIVED,
        **client.audit_fields(),
        code_digest=digest(params.get("code")),
        state_digest=state_digest,
        browser_token_digest=digest(browser_token) if isinstance(browser_token, str) else None,
    )
    with _validate_stage(client, "callback.state_store_lookup"):
        found = peek_one_time(client, payload)
        if found is None:
            audit.emit(
                audit.AUDIT_STATE_STORE_LOOKUP_FAILED,
                **client.audit_fields(),
                state_digest=state_digest,
                phase="state_store_lookup",
                error_class="StateError",
            )
            raise failed(
                StateError(
                    "This login was already completed or has expired; please sign in again.",
                    reason="state_unknown_or_used",
                ),
                "callback.state_store_lookup",
            )
    with _validate_stage(client, "callback.browser_token_validation"):
        try:
            check_browser_token(browser_token)
        except InputError as exc:
            raise failed(exc, "callback.browser_token_validation") from None
        if not same_browser(found.browser_digest, browser_token):
            # The state stays unconsumed: the rightful browser can still finish.
            raise failed(
                StateError(
                    "This sign-in response was issued to another browser.",
                    reason="browser_binding_mismatch",
                ),
                "callback.browser_token_validation",
            )
    with _validate_stage(client, "callback.state_store_consume"):
        values = take_one_time(client, payload)
        if values is None:
            raise failed(
                StateError(
                    "This login was already completed; please sign in again.",
                    reason="state_replayed",
                ),
                "callback.state_store_consume",
            )
    audit.emit(
        audit.AUDIT_CALLBACK_VALIDATION_SUCCESS, **client.audit_fields(), state_digest=state_digest
    )
    if "error" in params:
        raise _provider_error(client, params)
    with _validate_stage(client, "callback.pkce_verifier_validation"):
        try:
            pkce.validate_code_verifier(values.code_verifier)
        except DashOAuthError as exc:
            raise failed(exc, "callback.pkce_verifier_validation") from None
    token = _exchange(client, params["code"], values, payload.max_age)
    _login_success(client, token, payload.issued_at)
    return token, dict(payload.app or {})


def _provider_error(client: OAuthClient, params: Mapping[str, str]) -> AuthorizationError:
    code = safe_oauth_error(params.get("error")) or "invalid_request"
    raw = params.get("error_description") or ""
    description = "".join(ch for ch in raw if ch.isprintable())[:300] or None
    audit.emit(
        audit.ERROR,
        **client.audit_fields(),
        phase="callback.provider_error",
        oauth_error=code,
        message="The provider answered the login with an error.",
    )
    return AuthorizationError(
        f"The provider refused the login: {code}.",
        error=code,
        description=description,
        phase="callback.provider_error",
        reason=code,
    )


def _exchange(
    client: OAuthClient, code: str, values: OneTimeValues, max_age: int | None
) -> OAuthToken:
    provider = client.provider
    code_digest = digest(code)
    with spans.span(
        spans.TOKEN_EXCHANGE,
        {
            **client.telemetry_attributes(),
            attr.OAUTH_PHASE: "token.exchange",
            attr.OAUTH_USED_PKCE: True,
            attr.OAUTH_CLIENT_AUTH_STYLE: client.auth_style,
            attr.OAUTH_EXTRA_TOKEN_PARAMS_COUNT: len(client.extra_token_params),
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
        spans.set_attributes(
            current,
            {
                attr.OAUTH_TOKEN_TYPE: parsed.token_type,
                attr.OAUTH_RECEIVED_ID_TOKEN: parsed.id_token is not None,
                attr.OAUTH_RECEIVED_REFRESH_TOKEN: parsed.refresh_token is not None,
                attr.OAUTH_EXPIRES_IN_PRESENT: parsed.expires_in_present,
            },
        )
        audit.emit(
            audit.AUDIT_TOKEN_EXCHANGE,
            **client.audit_fields(),
            code_digest=code_digest,
            used_pkce=True,
            received_id_token=parsed.id_token is not None,
            received_refresh_token=parsed.refresh_token is not None,
            expires_in_present=parsed.expires_in_present,
        )
    return verify_token_response(
        client, parsed, phase="callback.verify", nonce=values.nonce, max_age=max_age
    )


def _login_success(client: OAuthClient, token: OAuthToken, issued_at: float) -> None:
    sub_source = "id_token" if token.id_token_validated else "userinfo"
    audit.emit(
        audit.AUDIT_LOGIN_SUCCESS,
        **client.audit_fields(),
        sub_digest=digest(token.subject),
        sub_source=sub_source,
        refresh_token_present=token.refresh_token is not None,
        expires_at=token.expires_at,
    )
    record_login(client.provider.name, "success", max(0.0, time.time() - issued_at))
