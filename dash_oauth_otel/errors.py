"""The exception tree of ``dash_oauth_otel``.

Every error the package raises derives from :class:`DashOAuthError`::

    DashOAuthError
    ├── ConfigError            the application is misconfigured
    │   └── DiscoveryError     provider metadata is unusable
    ├── InputError             a request or argument has the wrong shape or size
    │   ├── CallbackQueryError   the callback's parameters are malformed
    │   │   └── CallbackIssuerError  RFC 9207 ``iss`` missing or wrong
    │   └── RouteError         no such module route, or not with this method
    ├── StateError             sealed state unusable, expired, replayed or unbound
    │   └── TaskBindingError   a worker task's input or outcome is not that task's
    ├── AuthorizationError     the provider answered the login with an error
    ├── PKCEError              the PKCE verifier is missing or malformed
    ├── NonceError             the ID token nonce does not match
    ├── IDTokenError           the ID token failed validation
    ├── LogoutTokenError       a back-channel logout token failed validation
    ├── JWKSError              the provider's key set is unusable
    ├── UserinfoError          the userinfo response failed validation
    ├── HTTPError              another endpoint answered with a non-success status
    │   ├── TokenEndpointError       the token endpoint refused or answered badly
    │   └── PushedAuthorizationError the PAR endpoint refused or answered badly
    ├── TransportError         the call did not complete (timeout, redirect, size)
    │   └── WorkerTimeoutError a worker did not answer in time
    ├── PermissionDeniedError  the user is not in a group allowed to do this
    ├── RateLimitedError       too many logins are starting; try again shortly
    └── StoreError             the state or session store failed

:attr:`DashOAuthError.http_status` is the status of the module's page for the
error, by class: 400 for bad input, 502 for a failure of the provider or of
the connection to it (:class:`HTTPError`, :class:`TransportError`), 504 when a
worker does not answer in time, 503 for the store.  An :class:`HTTPError`
carries the provider's RFC 6749 §5.2 ``error`` code
(:attr:`HTTPError.oauth_error`), never the body.

Each error carries an OAuth-style wire code (:attr:`DashOAuthError.error`), the
``phase`` of the flow it happened in and the correlation ``trace_id`` of the
operation, so an error shown to a user can be found in the audit log and the
trace.  Messages never contain tokens, codes, state, secrets or cookie values.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationError",
    "CallbackIssuerError",
    "CallbackQueryError",
    "ConfigError",
    "DashOAuthError",
    "DiscoveryError",
    "HTTPError",
    "IDTokenError",
    "InputError",
    "JWKSError",
    "LogoutTokenError",
    "NonceError",
    "PKCEError",
    "PermissionDeniedError",
    "PushedAuthorizationError",
    "RateLimitedError",
    "RouteError",
    "StateError",
    "StoreError",
    "TaskBindingError",
    "TokenEndpointError",
    "TransportError",
    "UserinfoError",
    "WorkerTimeoutError",
]


class DashOAuthError(Exception):
    """Root of every error raised by the package.

    :param message: A human-readable explanation that holds no secret.
    :param phase: The step of the flow, e.g. ``"callback.state_payload"``.
    :param trace_id: The correlation id of the operation (see the audit log).
    :param reason: A short machine-readable reason code, more precise than
        :attr:`error`.
    """

    error: str = "dash_oauth_error"
    """The OAuth-style wire code shown to the app (``auth.error``)."""

    http_status: int = 400
    """The HTTP status of the module's error page for this class of error."""

    def __init__(
        self,
        message: str,
        *,
        phase: str | None = None,
        trace_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.phase = phase
        self.trace_id = trace_id
        self.reason = reason

    def __str__(self) -> str:
        if self.trace_id:
            return f"{self.message} (trace {self.trace_id})"
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, error={self.error!r}, "
            f"phase={self.phase!r}, reason={self.reason!r}, trace_id={self.trace_id!r})"
        )


class ConfigError(DashOAuthError):
    """The application's configuration cannot work; the message says what to change."""

    error = "config_error"


class DiscoveryError(ConfigError):
    """OpenID Connect discovery returned metadata that cannot be trusted or used."""

    error = "discovery_error"


class InputError(DashOAuthError):
    """An incoming request or an argument has the wrong shape or size."""

    error = "invalid_input"


class CallbackQueryError(InputError):
    """The callback's parameters are malformed: duplicates, sizes or shape."""

    error = "invalid_callback_query"


class CallbackIssuerError(CallbackQueryError):
    """The callback's RFC 9207 ``iss`` parameter is missing or names another issuer."""

    error = "issuer_mismatch"

    def __init__(self, message: str, *, missing: bool, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.missing = missing
        if missing:
            self.error = "issuer_missing"


class StateError(DashOAuthError):
    """The sealed state is malformed, tampered, expired, replayed or bound elsewhere."""

    error = "invalid_state"


class TaskBindingError(StateError):
    """A worker task's sealed input or outcome is used for another task than its own.

    Raised by a worker refusing an input, and by the web process refusing an
    outcome.  :attr:`reason` names the defect:

    * ``operation_mismatch`` — the message asks to run another operation than
      the one sealed in the input;
    * ``paths_mismatch`` — the message names another client path or
      ``worker_init`` than the ones sealed in the input;
    * ``expired`` — the input's validity, sealed in it, has passed;
    * ``replayed`` — a worker already ran this task;
    * ``task_mismatch`` — the outcome belongs to another task;
    * ``unsealable`` — the input or outcome does not open as one (tampered,
      sealed under another key, or an outcome given as an input).
    """

    error = "task_rejected"


class AuthorizationError(DashOAuthError):
    """The provider answered the authorization request with an error (RFC 6749 §4.1.2.1).

    Raised only after the state and the browser binding were validated, so the
    error is known to answer this browser's own login.  :attr:`error` is the
    provider's code (``access_denied``, ``login_required``, ...).

    :param error: The provider's error code (already checked to be a short token).
    :param description: The provider's description, cleaned for display.
    """

    error = "access_denied"

    def __init__(
        self, message: str, *, error: str, description: str | None = None, **kwargs: str | None
    ) -> None:
        super().__init__(message, **kwargs)
        self.error = error
        self.description = description


class PKCEError(DashOAuthError):
    """The PKCE code verifier is missing or malformed (RFC 7636 §4.1)."""

    error = "pkce_error"


class NonceError(DashOAuthError):
    """The ID token's ``nonce`` is missing or differs from the one sent."""

    error = "nonce_mismatch"


class IDTokenError(DashOAuthError):
    """The ID token failed validation (signature, algorithm or claims)."""

    error = "invalid_id_token"


class LogoutTokenError(DashOAuthError):
    """A back-channel logout token failed validation (Back-Channel Logout 1.0 §2.6).

    :attr:`reason` names the defect: ``malformed``, ``header_invalid``,
    ``alg_not_allowed``, ``wrong_typ``, ``unknown_kid``, ``bad_signature``,
    ``wrong_issuer``, ``wrong_audience``, ``missing_iat``, ``iat_in_future``,
    ``too_old``, ``expired``, ``missing_jti``, ``missing_events``,
    ``wrong_event``, ``nonce_present``, ``missing_sid_and_sub`` or
    ``replayed_jti``.  The relying party answers HTTP 400 (§2.8).
    """

    error = "invalid_logout_token"


class JWKSError(DashOAuthError):
    """The provider's JSON Web Key Set could not be fetched or is unsafe."""

    error = "jwks_error"


class HTTPError(DashOAuthError):
    """An endpoint answered with a non-success HTTP status.

    The response body is never echoed; only the status, the OAuth ``error`` code
    when the body carries one, and a keyed digest of the body are kept.

    :param status: The HTTP status of the answer.
    :param oauth_error: The RFC 6749 §5.2 ``error`` code, if a plain short token.
    """

    error = "http_error"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        oauth_error: str | None = None,
        **kwargs: str | None,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.oauth_error = oauth_error


class TokenEndpointError(HTTPError):
    """The token endpoint refused the request or answered with an unusable body.

    :attr:`oauth_error` holds the RFC 6749 §5.2 ``error`` code when present.
    """

    error = "token_exchange_error"


class PushedAuthorizationError(HTTPError):
    """The PAR endpoint (RFC 9126) refused the request or gave no usable ``request_uri``.

    :attr:`oauth_error` holds the provider's ``error`` code (e.g.
    ``invalid_request`` for an unregistered redirect URI, ``invalid_client``).
    """

    error = "par_error"


class UserinfoError(DashOAuthError):
    """The userinfo response is unusable or its ``sub`` differs from the ID token."""

    error = "userinfo_error"


class TransportError(DashOAuthError):
    """An outbound call did not complete: connection, timeout, redirect or size cap."""

    error = "transport_error"
    http_status = 502


class WorkerTimeoutError(TransportError):
    """A worker did not answer within the configured timeout."""

    error = "worker_timeout"
    http_status = 504


class StoreError(DashOAuthError):
    """The state or session store failed or cannot offer the required atomicity."""

    error = "store_error"
    http_status = 503


class PermissionDeniedError(DashOAuthError):
    """The signed-in user is not in a group allowed to run this (HTTP 403)."""

    error = "forbidden"


class RouteError(InputError):
    """A request to ``oauth/<name>`` names no module route (404) or uses the wrong method (405).

    :attr:`error` is ``not_found`` or ``method_not_allowed``.
    """

    error = "not_found"

    def __init__(
        self, message: str, *, method_not_allowed: bool = False, **kwargs: str | None
    ) -> None:
        super().__init__(message, **kwargs)
        if method_not_allowed:
            self.error = "method_not_allowed"


class RateLimitedError(DashOAuthError):
    """More logins are starting than the module admits (HTTP 429).

    :param retry_after: Seconds after which a new attempt will be admitted.
    """

    error = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
