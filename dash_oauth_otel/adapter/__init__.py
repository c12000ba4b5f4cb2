"""The Dash adapter: the only layer that imports Flask, Dash or Werkzeug."""

from __future__ import annotations

from dash_oauth_otel.adapter.background import background_trace as background_trace
from dash_oauth_otel.adapter.environment import client_from_env as client_from_env
from dash_oauth_otel.adapter.environment import module_from_env as module_from_env
from dash_oauth_otel.adapter.module import DashOAuth as DashOAuth
from dash_oauth_otel.adapter.options import ModuleOptions as ModuleOptions
from dash_oauth_otel.adapter.user import AuthState as AuthState
from dash_oauth_otel.adapter.user import User as User
from dash_oauth_otel.adapter.user import auth as auth
from dash_oauth_otel.adapter.user import current_user as current_user
from dash_oauth_otel.adapter.user import require_groups as require_groups
from dash_oauth_otel.errors import PermissionDeniedError as PermissionDeniedError

__all__ = [
    "AuthState",
    "DashOAuth",
    "ModuleOptions",
    "PermissionDeniedError",
    "User",
    "auth",
    "background_trace",
    "client_from_env",
    "current_user",
    "module_from_env",
    "require_groups",
]
