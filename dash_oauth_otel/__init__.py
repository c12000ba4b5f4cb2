"""Observable OAuth 2.0 / OpenID Connect login for Plotly Dash.

The public API is re-exported here; implementation modules live in the layers
``core`` (protocol), ``stores``, ``telemetry``, ``workers`` and ``adapter``.
"""

from __future__ import annotations

from dash_oauth_otel._types import Store as Store
from dash_oauth_otel._version import __version__ as __version__
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
from dash_oauth_otel.core.presets import auth0 as auth0
from dash_oauth_otel.core.presets import github as github
from dash_oauth_otel.core.presets import google as google
from dash_oauth_otel.core.presets import keycloak as keycloak
from dash_oauth_otel.core.presets import microsoft_entra as microsoft_entra
from dash_oauth_otel.core.presets import okta as okta
from dash_oauth_otel.core.provider import OAuthProvider as OAuthProvider
from dash_oauth_otel.core.token import OAuthToken as OAuthToken
from dash_oauth_otel.core.userinfo import get_userinfo as get_userinfo
from dash_oauth_otel.errors import AuthorizationError as AuthorizationError
from dash_oauth_otel.errors import CallbackIssuerError as CallbackIssuerError
from dash_oauth_otel.errors import CallbackQueryError as CallbackQueryError
from dash_oauth_otel.errors import ConfigError as ConfigError
from dash_oauth_otel.errors import DashOAuthError as DashOAuthError
from dash_oauth_otel.errors import DiscoveryError as DiscoveryError
from dash_oauth_otel.errors import HTTPError as HTTPError
from dash_oauth_otel.errors import IDTokenError as IDTokenError
from dash_oauth_otel.errors import InputError as InputError
from dash_oauth_otel.errors import JWKSError as JWKSError
from dash_oauth_otel.errors import LogoutTokenError as LogoutTokenError
from dash_oauth_otel.errors import NonceError as NonceError
from dash_oauth_otel.errors import PermissionDeniedError as PermissionDeniedError
from dash_oauth_otel.errors import PKCEError as PKCEError
from dash_oauth_otel.errors import PushedAuthorizationError as PushedAuthorizationError
from dash_oauth_otel.errors import RateLimitedError as RateLimitedError
from dash_oauth_otel.errors import RouteError as RouteError
from dash_oauth_otel.errors import StateError as StateError
from dash_oauth_otel.errors import StoreError as StoreError
from dash_oauth_otel.errors import TaskBindingError as TaskBindingError
from dash_oauth_otel.errors import TokenEndpointError as TokenEndpointError
from dash_oauth_otel.errors import TransportError as TransportError
from dash_oauth_otel.errors import UserinfoError as UserinfoError
from dash_oauth_otel.errors import WorkerTimeoutError as WorkerTimeoutError
from dash_oauth_otel.stores import DiskcacheStore as DiskcacheStore
from dash_oauth_otel.stores import MemoryStore as MemoryStore
from dash_oauth_otel.stores import RedisStore as RedisStore

__all__ = [
    "AuthorizationError",
    "AuthorizationRequest",
    "CallbackIssuerError",
    "CallbackQueryError",
    "ConfigError",
    "DashOAuthError",
    "DiscoveryError",
    "DiskcacheStore",
    "HTTPError",
    "HttpPolicy",
    "IDTokenError",
    "InputError",
    "IntrospectionResult",
    "JWKSError",
    "LogoutTokenError",
    "MemoryStore",
    "NonceError",
    "OAuthClient",
    "OAuthProvider",
    "OAuthToken",
    "PKCEError",
    "PermissionDeniedError",
    "PushedAuthorizationError",
    "RateLimitedError",
    "RedisStore",
    "RevocationResult",
    "RouteError",
    "StateError",
    "Store",
    "StoreError",
    "TaskBindingError",
    "TokenEndpointError",
    "TransportError",
    "UserinfoError",
    "WorkerTimeoutError",
    "__version__",
    "auth0",
    "complete_callback",
    "get_userinfo",
    "github",
    "google",
    "handle_callback",
    "introspect_token",
    "keycloak",
    "microsoft_entra",
    "oidc_discover",
    "okta",
    "prepare_call",
    "refresh_token",
    "revoke_token",
]
