"""Misconfiguration of the Dash module fails at start, with a message saying what to change."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from dash import Dash

from dash_oauth_otel import ConfigError
from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import OAuthProvider
from dash_oauth_otel.adapter import DashOAuth
from dash_oauth_otel.adapter.options import ModuleOptions


def _provider(**overrides):
    base = {
        "name": "example",
        "authorization_endpoint": "https://id.example.com/authorize",
        "token_endpoint": "https://id.example.com/token",
        "revocation_endpoint": "https://id.example.com/revoke",
    }
    base.update(overrides)
    return OAuthProvider(**base)


def _client(**overrides):
    base = {
        "provider": _provider(),
        "client_id": "app",
        "client_secret": "s3cret",
        "redirect_uri": "https://dash.example.com/oauth/callback",
        "state_key": "module-config-key-Zr7Kq2Wm9Xv4Lt8Bn3Yc6Pd1Hf",
        "state_store": MemoryStore(),
    }
    base.update(overrides)
    return OAuthClient(**base)


def test_attaches_with_init_app():
    app = Dash(__name__)
    module = DashOAuth(client=_client())
    assert module.init_app(app) is module
    assert app.server.extensions["dash_oauth_otel"] is module
    rules = {rule.rule for rule in app.server.url_map.iter_rules()}
    assert {"/oauth/login", "/oauth/callback", "/oauth/logout", "/oauth/status"} <= rules


def test_https_app_uses_host_prefixed_secure_cookies():
    client = _client()
    module = DashOAuth(Dash(__name__), client)
    assert module.cookies.session_name == f"__Host-dash_oauth_session_{client.namespace[:8]}"
    assert module.cookies.secure


def test_requires_a_client():
    with pytest.raises(ConfigError, match="client=OAuthClient"):
        DashOAuth(Dash(__name__))


def test_requires_a_shared_state_key():
    # A random state key opens only its own process's logins: refused even when
    # the sessions get a secret of their own.
    client = _client(state_key=None)
    with pytest.raises(ConfigError, match="state_key"):
        DashOAuth(Dash(__name__), client)
    with pytest.raises(ConfigError, match="state_key"):
        DashOAuth(
            Dash(__name__), client, secret_key="module-config-secret-Tq8Wn2Lr5Yv9Kx3Bm7Cd4Ph6"
        )


def test_short_secret_refused():
    with pytest.raises(ConfigError, match="32 bytes"):
        DashOAuth(Dash(__name__), _client(), secret_key="short")


def test_redirect_uri_must_match_the_callback_route():
    client = _client(redirect_uri="https://dash.example.com/auth/cb")
    with pytest.raises(ConfigError, match="/oauth/callback"):
        DashOAuth(Dash(__name__), client)


def test_redirect_uri_must_include_the_path_prefix():
    app = Dash(__name__, routes_pathname_prefix="/app/", requests_pathname_prefix="/app/")
    with pytest.raises(ConfigError, match="/app/oauth/callback"):
        DashOAuth(app, _client())


def test_revoke_on_session_end_needs_a_revocation_endpoint():
    client = _client(provider=_provider(revocation_endpoint=None))
    with pytest.raises(ConfigError, match="revocation"):
        DashOAuth(Dash(__name__), client, revoke_on_session_end=True)


def test_samesite_none_needs_https():
    client = _client(redirect_uri="http://127.0.0.1:8050/oauth/callback")
    with pytest.raises(ConfigError, match="HTTPS"):
        DashOAuth(Dash(__name__), client, cookie_samesite="None")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("cookie_samesite", "Loose"),
        ("idle_timeout", 0),
        ("max_lifetime", -1),
        ("reauth_after_seconds", 0),
        ("post_logout_path", "https://evil.example/"),
        ("public_routes", ["health"]),
    ],
)
def test_bad_options_refused(option, value):
    with pytest.raises(ConfigError):
        DashOAuth(Dash(__name__), _client(), **{option: value})


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        DashOAuth(Dash(__name__), _client(), auto_redirct=False)


def test_non_flask_server_refused():
    app = Dash(__name__)
    object.__setattr__(app, "server", object())
    with pytest.raises(ConfigError, match="Flask"):
        DashOAuth(app, _client())


def test_default_store_is_shared_on_disk():
    client = dataclasses.replace(_client(), state_store=None)
    module = DashOAuth(Dash(__name__), client)
    assert type(module.client.state_store).__name__ == "DiskcacheStore"


def test_the_module_leaves_the_apps_callback_checks_on():
    """The author's own callback-ID mistakes stay visible: no app-wide suppression."""
    app = Dash(__name__)
    DashOAuth(app, _client())
    assert app.config.suppress_callback_exceptions is False


def test_one_module_serves_several_apps_with_the_same_layout():
    module = DashOAuth(client=_client())
    first, second = Dash("first"), Dash("second")
    module.init_app(first)
    module.init_app(second)
    assert first.server.extensions["dash_oauth_otel"] is module
    assert second.server.extensions["dash_oauth_otel"] is module
    elsewhere = Dash("elsewhere", routes_pathname_prefix="/x/", requests_pathname_prefix="/")
    with pytest.raises(ConfigError, match="needs a DashOAuth of its own"):
        module.init_app(elsewhere)


def test_the_default_store_belongs_to_the_client(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    one = DashOAuth(Dash("one"), _client(state_store=None))
    other = DashOAuth(Dash("other"), _client(state_store=None, client_id="other-app"))
    again = DashOAuth(Dash("again"), _client(state_store=None))
    assert one.sessions.store.directory != other.sessions.store.directory
    assert one.sessions.store.directory == again.sessions.store.directory
    assert one.sessions.store.namespace == one.client.namespace
    assert (Path(one.sessions.store.directory).parent.stat().st_mode & 0o777) == 0o700


def test_the_login_bounds_have_their_documented_defaults():
    options = ModuleOptions()
    assert (options.login_rate_per_second, options.login_burst) == (20.0, 100)
    assert options.max_pending_logins_per_browser == 5
