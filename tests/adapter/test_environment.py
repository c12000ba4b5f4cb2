"""Configuration from DASH_OAUTH_* variables, explicit arguments winning."""

from __future__ import annotations

import pytest
from dash import Dash

from dash_oauth_otel import ConfigError
from dash_oauth_otel import MemoryStore
from dash_oauth_otel.adapter import client_from_env
from dash_oauth_otel.adapter import module_from_env


def _env(idp, **extra):
    return {
        "DASH_OAUTH_ISSUER": idp.issuer,
        "DASH_OAUTH_ALLOW_INSECURE_LOOPBACK": "1",
        "DASH_OAUTH_CLIENT_ID": "conf-basic",
        "DASH_OAUTH_CLIENT_SECRET": "conf-basic-secret",
        "DASH_OAUTH_REDIRECT_URI": "http://127.0.0.1:8050/oauth/callback",
        "DASH_OAUTH_SECRET_KEY": "environment-key-Hq7Wz3Lx9Rm2Vt8Bn5Yc4Pd6Kf",
        "DASH_OAUTH_SCOPES": "profile groups",
        **extra,
    }


def test_client_from_environment(idp, tmp_path):
    client = client_from_env(env=_env(idp, DASH_OAUTH_STORE_DIR=str(tmp_path / "s")))
    assert client.client_id == "conf-basic"
    assert client.scopes == ("openid", "profile", "groups")
    assert client.provider.issuer == idp.issuer
    assert type(client.state_store).__name__ == "DiskcacheStore"
    client.provider.close()


def test_explicit_arguments_win(idp):
    client = client_from_env(
        env=_env(idp), store=MemoryStore(), client_id="public", client_secret=None, scopes="email"
    )
    assert client.client_id == "public"
    assert client.auth_style == "client_secret_basic"  # the secret still comes from the env
    assert client.scopes == ("openid", "email")
    client.provider.close()


def test_redis_url_selects_redis(idp):
    client = client_from_env(env=_env(idp, DASH_OAUTH_REDIS_URL="redis://127.0.0.1:6379/0"))
    assert type(client.state_store).__name__ == "RedisStore"
    client.state_store.close()
    client.provider.close()


def test_missing_variable_names_itself(idp):
    env = _env(idp)
    del env["DASH_OAUTH_CLIENT_ID"]
    with pytest.raises(ConfigError, match="DASH_OAUTH_CLIENT_ID"):
        client_from_env(env=env, store=MemoryStore())


def test_module_from_environment(idp):
    app = Dash(__name__)
    module = module_from_env(app, env=_env(idp), store=MemoryStore(), auto_redirect=False)
    assert module.options.auto_redirect is False
    assert app.server.extensions["dash_oauth_otel"] is module
    module.client.provider.close()
