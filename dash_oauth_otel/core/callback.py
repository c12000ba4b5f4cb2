"""Completing a login: :func:`handle_callback`.

RFC 6749 §4.1.2, RFC 9207 (``iss``), RFC 9700 §4.7 (CSRF) and §4.4 (mix-up),
OpenID Connect Core §3.1.2.5 to §3.1.2.7.

The callback is validated in a fixed order: shape and sizes, ``iss`` (before
any use of the state), the sealed state, the store lookup, the browser binding
(a mismatch consumes nothing, so the rightful browser can still finish), and
the atomic consumption of the one-time values.  Only then is a provider error
reported or the code exchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

from opentelemetry import context as otel_context

from dash_oauth_otel.core import pkce
from dash_oauth_otel.core._ops import note_failure
from dash_oauth_otel.core._ops import propagator
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.exchange import exchange_code
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.state import StatePayload
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.state import peek_one_time
from dash_oauth_otel.core.state import same_browser
from dash_oauth_otel.core.state import take_one_time
from dash_oauth_otel.core.state import verify_binding
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.core.token_endpoint import safe_oauth_error
from dash_oauth_otel.errors import AuthorizationError
from dash_oauth_otel.errors import CallbackIssuerError
from dash_oauth_otel.errors import CallbackQueryError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.metrics import record_failure
from dash_oauth_otel.telemetry.metrics import record_login
from dash_oauth_otel.telemetry.redact import digest

__all__ = [
    "CALLBACK_LIMITS",
    "ValidatedCallback",
    "check_callback_issuer",
    "complete_callback",
    "exchange_validated",
    "handle_callback",
    "parse_callback_params",
    "record_login_success",
    "run_callback",
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


def parse_callback_params(query: Mapping[str, Any] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Flatten callback parameters; duplicates, oversized members and odd shapes are refused.

    :raises CallbackQueryError: With reason ``too_many_params``, ``duplicate_param``,
        ``param_type``, ``param_too_large``, ``state_missing`` or ``callback_shape``.
    """
    pairs: list[tuple[str, Any]]
    if hasattr(query, "lists"):  # werkzeug MultiDict and friends
        pairs = [(k, v) for k, vs in query.lists() for v in (vs if len(vs) == 1 else [vs])]
    elif isinstance(query, Mapping):
        pairs = list(query.items())
    else:
        pairs = list(query)
    if len(pairs) > _MAX_PARAMS:
        raise CallbackQueryError("The callback has too many parameters.", reason="too_many_params")
    out: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise CallbackQueryError(
                    f"The callback repeats the parameter {str(key)[:32]!r}.",
                    reason="duplicate_param",
                )
            value = value[0]
        if not isinstance(key, str) or not isinstance(value, str):
            raise CallbackQueryError("The callback parameters are malformed.", reason="param_type")
        if key in out:
            raise CallbackQueryError(
                f"The callback repeats the parameter {key[:32]!r}.", reason="duplicate_param"
            )
        limit = CALLBACK_LIMITS.get(key, _OTHER_PARAM_LIMIT)
        if len(value) > limit or len(key) > 64:
            raise CallbackQueryError(
                f"The callback parameter {key[:32]!r} is too large.", reason="param_too_large"
            )
        out[key] = value
    if "state" not in out or not out["state"]:
        raise CallbackQueryError("The callback has no state.", reason="state_missing")
    if ("code" in out) == ("error" in out):
        raise CallbackQueryError(
            "The callback must carry exactly one of code and error.", reason="callback_shape"
        )
    if "code" in out and not out["code"]:
        raise CallbackQueryError("The callback has an empty code.", reason="callback_shape")
    return out


def check_callback_issuer(client: OAuthClient, params: Mapping[str, str]) -> None:
    """RFC 9207 §2.4: compare ``iss`` with the issuer, before any use of the state.

    A present ``iss`` is always compared, exactly as received, whether or not
    the provider advertises ``authorization_response_iss_parameter_supported``
    (some providers, e.g. Glewlwyd, send it unadvertised).  A missing ``iss``
    is refused only when :attr:`OAuthClient.enforces_issuer_parameter`.  The
    comparison is never loosened: a provider that URL-encodes its form_post
    fields twice (Glewlwyd 2.7) sends ``http%3A%2F%2F...`` and its callbacks are
    refused as ``issuer_mismatch``; use the query response mode with it.
    """
    iss = params.get("iss")
    expected = client.provider.issuer
    if expected is None:
        return
    if iss is None:
        if not client.enforces_issuer_parameter:
            return
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
    return run_callback(client, query, browser_token, exchange_validated)


def exchange_validated(
    client: OAuthClient, validated: ValidatedCallback
) -> tuple[OAuthToken, Mapping[str, str]]:
    """Exchange the code of a validated callback here (the ``finish`` of :func:`run_callback`).

    :returns: The verified token set and the ``app_data`` sealed at login.
    """
    token = exchange_code(client, validated.code, validated.values, validated.payload.max_age)
    record_login_success(client, token, validated.payload.issued_at)
    return token, dict(validated.payload.app or {})


@dataclass(frozen=True)
class ValidatedCallback:
    """A callback that passed every check; its one-time values are consumed.

    :param code: The authorization code (exchange it once).
    :param values: PKCE verifier, nonce and binding digest of the login.
    :param payload: The unsealed state (``app`` data, ``max_age``, issue time).
    """

    code: str = field(repr=False)
    values: OneTimeValues = field(repr=False)
    payload: StatePayload = field(repr=False)


T = TypeVar("T")


def run_callback(
    client: OAuthClient,
    query: Mapping[str, Any] | Iterable[tuple[str, str]],
    browser_token: str,
    finish: Callable[[OAuthClient, ValidatedCallback], T],
    *,
    is_async: bool = False,
) -> T:
    """Validate a callback inside the ``callback`` span, then hand it to ``finish``.

    ``finish`` exchanges the code: here (:func:`complete_callback`) or in a
    worker (the Dash module's async mode), still inside the callback span and
    under the login's correlation id.
    """
    try:
        params = parse_callback_params(query)
        check_callback_issuer(client, params)
    except DashOAuthError as exc:
        _reject_before_state(client, exc)
        raise
    payload = None
    early: StateError | None = None
    try:
        payload = open_state(client, params["state"])
    except StateError as exc:
        early = exc
    parent = propagator.extract(dict(payload.otel or {})) if payload else None
    trace_id = payload.trace_id if payload else None
    with (
        trace_id_scope(trace_id) as tid,
        spans.span(
            spans.CALLBACK,
            {
                **client.telemetry_attributes(),
                attr.OAUTH_PHASE: "callback",
                attr.OAUTH_ASYNC: is_async,
                attr.OAUTH_USERINFO_REQUIRED: client.fetch_userinfo
                and client.provider.userinfo_endpoint is not None,
                attr.OAUTH_ID_TOKEN_VALIDATION_ENABLED: client.provider.is_oidc,
                attr.OAUTH_USERINFO_ID_TOKEN_MATCH_REQUIRED: client.fetch_userinfo
                and client.provider.userinfo_endpoint is not None
                and client.provider.is_oidc
                and "openid" in client.scopes,
                # No introspection is part of a login (``introspect_token`` is separate).
                attr.OAUTH_INTROSPECT: False,
                attr.OAUTH_INTROSPECT_ELEMENTS_COUNT: 0,
            },
            parent=parent if parent is not None else otel_context.Context(),
        ),
    ):
        try:
            validated = _validate(client, params, browser_token, payload, early)
            return finish(client, validated)
        except DashOAuthError as exc:
            note_failure(exc, tid, "callback")
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


def _validate(
    client: OAuthClient,
    params: Mapping[str, str],
    browser_token: str,
    payload: StatePayload | None,
    early: StateError | None,
) -> ValidatedCallback:
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
        if payload is None:
            early = early or StateError("The state is unusable.", reason="payload_shape")
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
            _error_state_not_consumed(client, params, state_digest, "state_unknown_or_used")
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
            _error_state_not_consumed(client, params, state_digest, "state_replayed")
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
        audit.emit(
            audit.AUDIT_ERROR_STATE_CONSUMED, **client.audit_fields(), state_digest=state_digest
        )
        raise _provider_error(client, params)
    with _validate_stage(client, "callback.pkce_verifier_validation"):
        try:
            pkce.validate_code_verifier(values.code_verifier)
        except DashOAuthError as exc:
            raise failed(exc, "callback.pkce_verifier_validation") from None
    return ValidatedCallback(params["code"], values, payload)


def _error_state_not_consumed(
    client: OAuthClient, params: Mapping[str, str], state_digest: str | None, reason: str
) -> None:
    """An error answer of the provider whose login could not be spent (unknown or used)."""
    if "error" in params:
        audit.emit(
            audit.AUDIT_ERROR_STATE_CONSUMPTION_FAILED,
            **client.audit_fields(),
            state_digest=state_digest,
            error_class="StateError",
            reason=reason,
        )


def _provider_error(client: OAuthClient, params: Mapping[str, str]) -> AuthorizationError:
    code = safe_oauth_error(params.get("error")) or "invalid_request"
    raw = params.get("error_description") or ""
    description = "".join(ch for ch in raw if ch.isprintable())[:300] or None
    audit.emit(
        audit.ERROR,
        **client.audit_fields(),
        phase="callback.provider_error",
        oauth_error=code,
        reason=code,
        error_class="AuthorizationError",
        message="The provider answered the login with an error.",
    )
    return AuthorizationError(
        f"The provider refused the login: {code}.",
        error=code,
        description=description,
        phase="callback.provider_error",
        reason=code,
    )


def record_login_success(client: OAuthClient, token: OAuthToken, issued_at: float) -> None:
    """Audit and count a completed login (``issued_at``: when it started)."""
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
