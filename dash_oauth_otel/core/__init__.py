"""The OAuth 2.0 / OpenID Connect protocol core: framework-free and I/O through one seam.

Nothing here imports Flask or Dash, reads request globals or the environment;
stores, clocks and HTTP transports are injected.
"""

from __future__ import annotations

from dash_oauth_otel.core.callback import complete_callback as complete_callback
from dash_oauth_otel.core.callback import handle_callback as handle_callback
from dash_oauth_otel.core.client import OAuthClient as OAuthClient
from dash_oauth_otel.core.discovery import oidc_discover as oidc_discover
from dash_oauth_otel.core.http import HttpPolicy as HttpPolicy
from dash_oauth_otel.core.lifecycle import IntrospectionResult as IntrospectionResult
from dash_oauth_otel.core.lifecycle import RevocationResult as RevocationResult
from dash_oauth_otel.core.lifecycle import introspect_token as introspect_token
from dash_oauth_otel.core.lifecycle import refresh_token as refresh_token
from dash_oauth_otel.core.lifecycle import revoke_token as revoke_token
from dash_oauth_otel.core.login import AuthorizationRequest as AuthorizationRequest
from dash_oauth_otel.core.login import prepare_call as prepare_call
from dash_oauth_otel.core.provider import OAuthProvider as OAuthProvider
from dash_oauth_otel.core.token import OAuthToken as OAuthToken
from dash_oauth_otel.core.userinfo import get_userinfo as get_userinfo

__all__ = [
    "AuthorizationRequest",
    "HttpPolicy",
    "IntrospectionResult",
    "OAuthClient",
    "OAuthProvider",
    "OAuthToken",
    "RevocationResult",
    "complete_callback",
    "get_userinfo",
    "handle_callback",
    "introspect_token",
    "oidc_discover",
    "prepare_call",
    "refresh_token",
    "revoke_token",
]
