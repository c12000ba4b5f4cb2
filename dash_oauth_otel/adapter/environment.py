"""Configuration from ``DASH_OAUTH_*`` environment variables; explicit arguments win.

=================================  ===============================================
Variable                           Meaning
=================================  ===============================================
``DASH_OAUTH_ISSUER``              OpenID issuer (discovery runs at start)
``DASH_OAUTH_CLIENT_ID``           client id
``DASH_OAUTH_CLIENT_SECRET``       client secret (omit for a public client)
``DASH_OAUTH_REDIRECT_URI``        exact callback URL registered at the provider
``DASH_OAUTH_SCOPES``              space-separated scopes (``openid`` is added)
``DASH_OAUTH_SECRET_KEY``          32+ bytes sealing state and sessions
``DASH_OAUTH_REDIS_URL``           use a ``RedisStore`` at this URL
``DASH_OAUTH_STORE_DIR``           directory of the default ``DiskcacheStore``
``DASH_OAUTH_ALLOW_INSECURE_LOOPBACK``  ``1`` accepts an ``http`` issuer on loopback
=================================  ===============================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dash

from dash_oauth_otel._types import Store
from dash_oauth_otel.adapter.module import DashOAuth
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.discovery import oidc_discover
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.stores import DiskcacheStore
from dash_oauth_otel.stores import RedisStore

__all__ = ["client_from_env", "module_from_env"]

_TRUE = frozenset({"1", "true", "yes", "on"})


def _get(env: Mapping[str, str], name: str, override: Any) -> Any:
    if override is not None:
        return override
    value = env.get(f"DASH_OAUTH_{name}")
    return value if value else None


def _require(value: Any, name: str) -> Any:
    if value is None:
        raise ConfigError(f"Set DASH_OAUTH_{name} (or pass it as an argument).")
    return value


def client_from_env(
    *,
    env: Mapping[str, str] | None = None,
    store: Store | None = None,
    **overrides: Any,
) -> OAuthClient:
    """Build an :class:`OAuthClient` from ``DASH_OAUTH_*`` variables.

    Keyword arguments (``issuer``, ``client_id``, ``client_secret``,
    ``redirect_uri``, ``scopes``, ``secret_key``, any other ``OAuthClient``
    field) take precedence over the environment.
    """
    env = os.environ if env is None else env
    issuer = _require(_get(env, "ISSUER", overrides.pop("issuer", None)), "ISSUER")
    client_id = _require(_get(env, "CLIENT_ID", overrides.pop("client_id", None)), "CLIENT_ID")
    redirect_uri = _require(
        _get(env, "REDIRECT_URI", overrides.pop("redirect_uri", None)), "REDIRECT_URI"
    )
    secret_key = _require(_get(env, "SECRET_KEY", overrides.pop("secret_key", None)), "SECRET_KEY")
    client_secret = _get(env, "CLIENT_SECRET", overrides.pop("client_secret", None))
    scopes = _get(env, "SCOPES", overrides.pop("scopes", None)) or "profile email"
    if store is None:
        redis_url = env.get("DASH_OAUTH_REDIS_URL")
        if redis_url:
            store = RedisStore.from_url(redis_url)
        else:
            store = DiskcacheStore(env.get("DASH_OAUTH_STORE_DIR") or None)
    insecure = str(env.get("DASH_OAUTH_ALLOW_INSECURE_LOOPBACK", "")).lower() in _TRUE
    provider = overrides.pop("provider", None) or oidc_discover(
        issuer, allow_insecure_loopback=insecure
    )
    return OAuthClient(
        provider=provider,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        scopes=tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes),
        state_key=secret_key,
        state_store=store,
        **overrides,
    )


def module_from_env(
    app: dash.Dash, *, env: Mapping[str, str] | None = None, **options: Any
) -> DashOAuth:
    """Attach :class:`DashOAuth` to ``app`` with a client built from the environment.

    ``options`` go to :class:`DashOAuth`, except client fields
    (``issuer``, ``client_id``, ...), which go to :func:`client_from_env`.
    """
    client_fields = {
        "issuer",
        "client_id",
        "client_secret",
        "redirect_uri",
        "scopes",
        "secret_key",
        "provider",
        "response_mode",
        "max_age",
        "use_par",
    }
    client_options = {k: options.pop(k) for k in list(options) if k in client_fields}
    client = client_from_env(env=env, store=options.pop("store", None), **client_options)
    return DashOAuth(app, client, **options)
