"""Span and log attribute keys (the ``oauth.*`` and ``dash.*`` catalog).

HTTP client attributes use the stable semantic-convention keys; the rest follow
the span catalog documented in ``vignettes/opentelemetry.md``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DASH_MAIN_PROCESS_ID",
    "DASH_MODULE_ID",
    "DASH_PROCESS_ID",
    "DASH_SESSION_ID_DIGEST",
    "DASH_SESSION_IS_ASYNC",
    "ERROR_TYPE",
    "HTTP_REQUEST_METHOD",
    "HTTP_RESPONSE_CONTENT_TYPE",
    "HTTP_RESPONSE_STATUS_CODE",
    "OAUTH_ACTIVE",
    "OAUTH_ASYNC",
    "OAUTH_BROWSER_COOKIE_PATH_ROOT",
    "OAUTH_CLIENT_AUTH_STYLE",
    "OAUTH_CLIENT_ID_DIGEST",
    "OAUTH_EXPIRES_IN_PRESENT",
    "OAUTH_EXPIRES_IN_SYNTHESIZED",
    "OAUTH_EXTRA_AUTH_PARAMS_COUNT",
    "OAUTH_EXTRA_TOKEN_HEADERS_COUNT",
    "OAUTH_EXTRA_TOKEN_PARAMS_COUNT",
    "OAUTH_ID_TOKEN_PRESENT",
    "OAUTH_ID_TOKEN_REQUIRED",
    "OAUTH_ID_TOKEN_VALIDATED",
    "OAUTH_ID_TOKEN_VALIDATION_ENABLED",
    "OAUTH_INTROSPECT",
    "OAUTH_INTROSPECT_ELEMENTS_COUNT",
    "OAUTH_LOGOUT_SESSIONS_ENDED",
    "OAUTH_LOGOUT_SID_DIGEST",
    "OAUTH_LOGOUT_SUB_DIGEST",
    "OAUTH_MAX_AGE_REQUESTED",
    "OAUTH_NONCE_ENABLED",
    "OAUTH_NONCE_REQUIRED",
    "OAUTH_PAR_USED",
    "OAUTH_PHASE",
    "OAUTH_PROVIDER_ISSUER",
    "OAUTH_PROVIDER_NAME",
    "OAUTH_RECEIVED_ID_TOKEN",
    "OAUTH_RECEIVED_REFRESH_TOKEN",
    "OAUTH_REFRESH_FLOW",
    "OAUTH_REFRESH_PROACTIVELY",
    "OAUTH_RESPONSE_MODE",
    "OAUTH_REVOKED",
    "OAUTH_SCOPES_GRANTED",
    "OAUTH_SCOPES_GRANTED_COUNT",
    "OAUTH_SCOPES_REQUESTED",
    "OAUTH_SCOPES_REQUESTED_COUNT",
    "OAUTH_SCOPE_PRESENT",
    "OAUTH_STATUS",
    "OAUTH_SUPPORTED",
    "OAUTH_TOKEN_TYPE",
    "OAUTH_TOKEN_WHICH",
    "OAUTH_USED_PKCE",
    "OAUTH_USERINFO_ID_TOKEN_MATCH_REQUIRED",
    "OAUTH_USERINFO_REQUIRED",
    "OAUTH_USERINFO_SUBJECT_PRESENT",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "TRACE_ID",
    "URL_FULL",
]

# Correlation.
TRACE_ID: Final = "dash_oauth_otel.trace_id"
"""The package correlation id of one login or token operation."""

# Client and provider identity (low cardinality; the client id only as a digest).
OAUTH_PROVIDER_NAME: Final = "oauth.provider.name"
OAUTH_PROVIDER_ISSUER: Final = "oauth.provider.issuer"
OAUTH_CLIENT_ID_DIGEST: Final = "oauth.client_id_digest"
OAUTH_PHASE: Final = "oauth.phase"
"""The step of the flow, e.g. ``login.request`` or ``callback.state_payload``."""
OAUTH_ASYNC: Final = "oauth.async"

# Login request.
OAUTH_USED_PKCE: Final = "oauth.used_pkce"
OAUTH_NONCE_ENABLED: Final = "oauth.nonce_enabled"
OAUTH_SCOPES_REQUESTED: Final = "oauth.scopes.requested"
OAUTH_SCOPES_REQUESTED_COUNT: Final = "oauth.scopes.requested_count"
OAUTH_MAX_AGE_REQUESTED: Final = "oauth.max_age.requested"
OAUTH_EXTRA_AUTH_PARAMS_COUNT: Final = "oauth.extra_auth_params_count"
OAUTH_PAR_USED: Final = "oauth.par_used"
OAUTH_RESPONSE_MODE: Final = "oauth.response_mode"

# Callback and token handling.
OAUTH_CLIENT_AUTH_STYLE: Final = "oauth.client_auth_style"
OAUTH_EXTRA_TOKEN_PARAMS_COUNT: Final = "oauth.extra_token_params_count"
OAUTH_EXTRA_TOKEN_HEADERS_COUNT: Final = "oauth.extra_token_headers_count"
"""How many extra headers go to the token endpoint (names and values not recorded)."""
OAUTH_TOKEN_TYPE: Final = "oauth.token_type"
OAUTH_RECEIVED_ID_TOKEN: Final = "oauth.received_id_token"
OAUTH_RECEIVED_REFRESH_TOKEN: Final = "oauth.received_refresh_token"
OAUTH_EXPIRES_IN_PRESENT: Final = "oauth.expires_in_present"
OAUTH_EXPIRES_IN_SYNTHESIZED: Final = "oauth.expires_in_synthesized"
"""An expiry was assumed although the response stated no ``expires_in``."""
OAUTH_SCOPE_PRESENT: Final = "oauth.scope.present"
"""The token response states ``scope``."""
OAUTH_SCOPES_GRANTED: Final = "oauth.scopes.granted"
OAUTH_SCOPES_GRANTED_COUNT: Final = "oauth.scopes.granted_count"
OAUTH_ID_TOKEN_VALIDATION_ENABLED: Final = "oauth.id_token.validation_enabled"
OAUTH_ID_TOKEN_REQUIRED: Final = "oauth.id_token.required"
OAUTH_ID_TOKEN_PRESENT: Final = "oauth.id_token.present"
OAUTH_ID_TOKEN_VALIDATED: Final = "oauth.id_token.validated"
OAUTH_NONCE_REQUIRED: Final = "oauth.nonce.required"
"""The ID token must carry the nonce of the login."""
OAUTH_REFRESH_FLOW: Final = "oauth.refresh_flow"
OAUTH_USERINFO_REQUIRED: Final = "oauth.userinfo.required"
OAUTH_USERINFO_SUBJECT_PRESENT: Final = "oauth.userinfo.subject_present"
OAUTH_USERINFO_ID_TOKEN_MATCH_REQUIRED: Final = "oauth.userinfo.id_token_match_required"
"""Userinfo must name the subject of the ID token."""
OAUTH_INTROSPECT: Final = "oauth.introspect"
"""The token is introspected as part of the login."""
OAUTH_INTROSPECT_ELEMENTS_COUNT: Final = "oauth.introspect_elements_count"
"""How many introspection results the login requires."""

# Module options.
OAUTH_BROWSER_COOKIE_PATH_ROOT: Final = "oauth.browser_cookie_path_root"
"""The module's cookies are set with ``Path=/``."""
OAUTH_REFRESH_PROACTIVELY: Final = "oauth.refresh_proactively"
"""An open page checks in to refresh the access token before it expires."""

# Revocation and introspection.
OAUTH_TOKEN_WHICH: Final = "oauth.token.which"
OAUTH_SUPPORTED: Final = "oauth.supported"
OAUTH_REVOKED: Final = "oauth.revoked"
OAUTH_ACTIVE: Final = "oauth.active"
OAUTH_STATUS: Final = "oauth.status"

# Provider-initiated logout (back- and front-channel).
OAUTH_LOGOUT_SESSIONS_ENDED: Final = "oauth.logout.sessions_ended"
OAUTH_LOGOUT_SID_DIGEST: Final = "oauth.logout.sid_digest"
"""Keyed digest of the provider's session id named by the logout."""
OAUTH_LOGOUT_SUB_DIGEST: Final = "oauth.logout.sub_digest"
"""Keyed digest of the subject named by the logout."""

# Dash metadata (the catalog's ``shiny.*`` keys).
DASH_MODULE_ID: Final = "dash.module_id"
DASH_SESSION_ID_DIGEST: Final = "dash.session_id_digest"
DASH_PROCESS_ID: Final = "dash.process_id"
DASH_MAIN_PROCESS_ID: Final = "dash.main_process_id"
DASH_SESSION_IS_ASYNC: Final = "dash.session.is_async"
"""The work of the request is handed to a worker backend (the module has workers)."""

# Stable semantic conventions for HTTP client spans and errors.
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_RESPONSE_CONTENT_TYPE: Final = "http.response.content_type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
URL_FULL: Final = "url.full"
ERROR_TYPE: Final = "error.type"
