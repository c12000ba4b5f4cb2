"""Tests of dash_oauth_otel.core.client: OAuthClient construction and its refusals."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from dash_oauth_otel.core.client import DEFAULT_OIDC_SCOPES
from dash_oauth_otel.core.client import RESERVED_AUTH_PARAMS
from dash_oauth_otel.core.client import RESERVED_TOKEN_PARAMS
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StateError

BASE = "https://idp.example"
REDIRECT = "https://app.example/oauth/callback"
STATE_KEY = "state-key-StPKR0CsTy4Qwb8DwkNhFdnXsiVp"
SECRET = "client-secret-value"


@pytest.fixture
def make_provider() -> Iterator[Callable[..., OAuthProvider]]:
    made: list[OAuthProvider] = []

    def make(*, oidc: bool = True, **overrides: Any) -> OAuthProvider:
        options: dict[str, Any] = {
            "name": "idp",
            "authorization_endpoint": f"{BASE}/authorize",
            "token_endpoint": f"{BASE}/token",
        }
        if oidc:
            options.update(issuer=BASE, jwks_uri=f"{BASE}/jwks")
        options.update(overrides)
        provider = OAuthProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def make_client(make_provider) -> Callable[..., OAuthClient]:
    def make(provider: OAuthProvider | None = None, **overrides: Any) -> OAuthClient:
        options: dict[str, Any] = {
            "provider": provider or make_provider(),
            "client_id": "app",
            "redirect_uri": REDIRECT,
            "client_secret": SECRET,
            "state_key": STATE_KEY,
        }
        options.update(overrides)
        return OAuthClient(**options)

    return make


def config_error(make_client: Callable[..., OAuthClient], *args: Any, **overrides: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        make_client(*args, **overrides)
    assert SECRET not in str(caught.value)
    assert STATE_KEY not in str(caught.value)
    return caught.value.message


# -- defaults -------------------------------------------------------------------


def test_confidential_client_defaults_to_basic(make_client) -> None:
    client = make_client()
    assert client.auth_style == "client_secret_basic"
    assert client.state_ttl == 300.0
    assert client.fetch_userinfo is True
    assert client.state_key_is_ephemeral is False


def test_public_client_defaults_to_none(make_client) -> None:
    client = make_client(client_secret=None)
    assert client.auth_style == "none"


def test_openid_added_first_for_openid_provider(make_client) -> None:
    client = make_client(scopes=("profile", "email"))
    assert client.scopes == ("openid", "profile", "email")


def test_openid_not_duplicated(make_client) -> None:
    client = make_client(scopes=("email", "openid"))
    assert client.scopes == ("email", "openid")


def test_openid_not_added_for_oauth2_provider(make_client, make_provider) -> None:
    client = make_client(make_provider(oidc=False), scopes=("read:user",))
    assert client.scopes == ("read:user",)


def test_scopes_from_string_deduplicated(make_client) -> None:
    client = make_client(scopes="profile  email profile")
    assert client.scopes == ("openid", "profile", "email")


@pytest.mark.parametrize("scope", ["", "a b", 'a"b', "a\\b", 3])
def test_invalid_scope(make_client, scope: object) -> None:
    assert "scope" in config_error(make_client, scopes=("profile", scope))


def test_ephemeral_state_key(make_client) -> None:
    client = make_client(state_key=None)
    assert client.state_key_is_ephemeral
    assert isinstance(client.state_key, bytes)
    assert len(client.state_key) == 32
    assert make_client(state_key=None).state_key != client.state_key


def test_sealers_are_distinct_purposes(make_client) -> None:
    client = make_client()
    token = client.state_sealer.seal({"a": 1})
    assert client.state_sealer.unseal(token) == {"a": 1}
    with pytest.raises(StateError) as caught:
        client.store_sealer.unseal(token)
    assert caught.value.reason == "gcm_auth_failed"


# -- client authentication ------------------------------------------------------


def test_secret_with_auth_style_none_refused(make_client) -> None:
    message = config_error(make_client, auth_style="none")
    assert "auth_style='none'" in message


@pytest.mark.parametrize("style", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("secret", [None, ""])
def test_secret_missing(make_client, style: str, secret: str | None) -> None:
    message = config_error(make_client, auth_style=style, client_secret=secret)
    assert "needs client_secret" in message


def test_unknown_auth_style(make_client) -> None:
    assert "auth_style must be one of" in config_error(make_client, auth_style="private_key_jwt")


def test_unadvertised_auth_method_refused(make_client, make_provider) -> None:
    provider = make_provider(token_endpoint_auth_methods_supported=("client_secret_post",))
    message = config_error(make_client, provider, auth_style="client_secret_basic")
    assert "client_secret_basic" in message
    assert "client_secret_post" in message


def test_unadvertised_public_client_refused(make_client, make_provider) -> None:
    provider = make_provider(token_endpoint_auth_methods_supported=("client_secret_basic",))
    config_error(make_client, provider, client_secret=None)


def test_advertised_auth_method_accepted(make_client, make_provider) -> None:
    provider = make_provider(token_endpoint_auth_methods_supported=("client_secret_post",))
    assert make_client(provider, auth_style="client_secret_post").auth_style == (
        "client_secret_post"
    )


# -- redirect_uri ---------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "/oauth/callback",
        "app.example/oauth/callback",
        "",
        "https://app.example/oauth/callback#frag",
        "https://app.example/oauth/callback?next=/x",
        "http://app.example/oauth/callback",
        "https://user:pw@app.example/oauth/callback",
        "javascript:alert(1)",
    ],
)
def test_bad_redirect_uri(make_client, redirect_uri: str) -> None:
    assert "redirect_uri" in config_error(make_client, redirect_uri=redirect_uri)


@pytest.mark.parametrize(
    "redirect_uri", ["http://127.0.0.1:8050/oauth/callback", "http://localhost:8050/cb"]
)
def test_http_loopback_redirect_uri_accepted(make_client, redirect_uri: str) -> None:
    # RFC 8252 §7.3: loopback redirects over http, even for an https provider.
    assert make_client(redirect_uri=redirect_uri).redirect_uri == redirect_uri


@pytest.mark.parametrize("client_id", ["", None, 5])
def test_client_id_required(make_client, client_id: object) -> None:
    assert "client_id" in config_error(make_client, client_id=client_id)


def test_provider_must_be_a_provider(make_client) -> None:
    assert "OAuthProvider" in config_error(make_client, provider=object())


# -- extra parameters -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RESERVED_AUTH_PARAMS))
def test_reserved_auth_param_refused(make_client, name: str) -> None:
    assert repr(name) in config_error(make_client, extra_auth_params={name: "x"})


@pytest.mark.parametrize("name", sorted(RESERVED_TOKEN_PARAMS))
def test_reserved_token_param_refused(make_client, name: str) -> None:
    assert repr(name) in config_error(make_client, extra_token_params={name: "x"})


def test_reserved_param_from_provider_refused(make_client, make_provider) -> None:
    provider = make_provider(extra_auth_params={"redirect_uri": "https://evil.example/cb"})
    assert "provider extra_auth_params" in config_error(make_client, provider)


def test_non_string_extra_value_refused(make_client) -> None:
    assert "must be a string" in config_error(make_client, extra_auth_params={"prompt": 1})
    assert "must be a string" in config_error(make_client, extra_token_params={"aud": None})


def test_unreserved_extras_accepted(make_client) -> None:
    client = make_client(extra_auth_params={"prompt": "login"}, extra_token_params={"aud": "x"})
    assert dict(client.extra_auth_params) == {"prompt": "login"}


# -- state key and lifetimes ----------------------------------------------------


@pytest.mark.parametrize("key", ["k" * 31, b"k" * 31, ""])
def test_short_state_key_refused(make_client, key: str | bytes) -> None:
    assert "state_key" in config_error(make_client, state_key=key)


@pytest.mark.parametrize("ttl", [30, 30.0, 300, 3600])
def test_state_ttl_bounds_accepted(make_client, ttl: float) -> None:
    assert make_client(state_ttl=ttl).state_ttl == ttl


@pytest.mark.parametrize("ttl", [29.9, 0, -1, 3600.5, 86400, float("nan"), float("inf")])
def test_state_ttl_out_of_bounds(make_client, ttl: float) -> None:
    assert "state_ttl" in config_error(make_client, state_ttl=ttl)


@pytest.mark.parametrize("max_age", [-1, 1.5, "60"])
def test_bad_max_age(make_client, max_age: object) -> None:
    assert "max_age" in config_error(make_client, max_age=max_age)


# -- response mode, PAR, issuer parameter ---------------------------------------


def test_bad_response_mode(make_client) -> None:
    assert "response_mode" in config_error(make_client, response_mode="fragment")


def test_unadvertised_response_mode(make_client, make_provider) -> None:
    provider = make_provider(response_modes_supported=("query",))
    assert "form_post" in config_error(make_client, provider, response_mode="form_post")


def test_response_mode_unknown_metadata_accepted(make_client) -> None:
    assert make_client(response_mode="form_post").response_mode == "form_post"


def test_use_par_without_endpoint_refused(make_client) -> None:
    assert "PAR" in config_error(make_client, use_par=True)


def test_use_par_false_when_required_refused(make_client, make_provider) -> None:
    provider = make_provider(pushed_authorization_request_endpoint=f"{BASE}/par", par_required=True)
    assert "requires PAR" in config_error(make_client, provider, use_par=False)


def test_par_used_by_default_when_offered(make_client, make_provider) -> None:
    provider = make_provider(pushed_authorization_request_endpoint=f"{BASE}/par")
    assert make_client(provider).uses_par is True
    assert make_client(provider, use_par=False).uses_par is False
    assert make_client().uses_par is False


def test_issuer_parameter_enforcement(make_client, make_provider) -> None:
    advertising = make_provider(iss_parameter_supported=True)
    assert make_client(advertising).enforces_issuer_parameter is True
    assert make_client(advertising, enforce_issuer_parameter=False).enforces_issuer_parameter is (
        False
    )
    assert make_client().enforces_issuer_parameter is False
    assert make_client(enforce_issuer_parameter=True).enforces_issuer_parameter is True
    oauth2 = make_provider(oidc=False)
    assert make_client(oauth2, enforce_issuer_parameter=True).enforces_issuer_parameter is False


# -- repr and telemetry ---------------------------------------------------------


def test_repr_hides_secret_and_state_key(make_client) -> None:
    client = make_client()
    for text in (repr(client), str(client), f"{client}", f"{client!r}"):
        assert SECRET not in text
        assert STATE_KEY not in text
        assert "'<redacted>'" in text
        assert "'app'" in text


def test_repr_of_public_client(make_client) -> None:
    text = repr(make_client(client_secret=None))
    assert "client_secret=None" in text
    assert STATE_KEY not in text


def test_telemetry_attributes_carry_only_a_client_id_digest(make_client) -> None:
    client = make_client(client_id="very-identifiable-client")
    attrs = client.telemetry_attributes()
    assert attrs["oauth.provider.name"] == "idp"
    assert attrs["oauth.provider.issuer"] == BASE
    assert len(attrs["oauth.client_id_digest"]) == 64
    assert "very-identifiable-client" not in repr(attrs)
    fields = client.audit_fields()
    assert fields["client_id_digest"] == attrs["oauth.client_id_digest"]
    assert "very-identifiable-client" not in repr(fields)


# -- policy fingerprint ---------------------------------------------------------


def test_policy_fingerprint_is_stable(make_client) -> None:
    first = make_client(scopes=("email", "profile"))
    second = make_client(
        scopes=("profile", "email"), state_key="another-key-zz63FfkCzJr4i0B3JrTAwR4y9ojf"
    )
    assert first.policy_fingerprint() == second.policy_fingerprint()
    assert len(first.policy_fingerprint()) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "other-app"},
        {"redirect_uri": "https://app.example/other/callback"},
        {"scopes": ("profile",)},
        {"auth_style": "client_secret_post"},
        {"response_mode": "form_post"},
        {"max_age": 60},
        {"fetch_userinfo": False},
        {"enforce_issuer_parameter": True},
        {"extra_auth_params": {"prompt": "login"}},
    ],
)
def test_policy_fingerprint_changes_with_policy(make_client, change: dict[str, Any]) -> None:
    assert make_client(**change).policy_fingerprint() != make_client().policy_fingerprint()


def test_policy_fingerprint_changes_with_par(make_client, make_provider) -> None:
    provider = make_provider(pushed_authorization_request_endpoint=f"{BASE}/par")
    assert (
        make_client(provider, use_par=True).policy_fingerprint()
        != make_client(provider, use_par=False).policy_fingerprint()
    )


def test_policy_fingerprint_excludes_secrets(make_client) -> None:
    client = make_client()
    assert client.policy_fingerprint() == make_client(client_secret="other").policy_fingerprint()


def test_client_is_frozen(make_client) -> None:
    client = make_client()
    with pytest.raises(AttributeError):
        client.client_id = "other"  # type: ignore[misc]


def test_http_policy_of_provider_allows_loopback_redirect(make_client, make_provider) -> None:
    provider = make_provider(
        issuer="http://127.0.0.1:9000",
        authorization_endpoint="http://127.0.0.1:9000/authorize",
        token_endpoint="http://127.0.0.1:9000/token",
        jwks_uri="http://127.0.0.1:9000/jwks",
        http=HttpPolicy(allow_insecure_loopback=True),
    )
    client = make_client(provider, redirect_uri="http://localhost:8050/cb")
    assert client.redirect_uri == "http://localhost:8050/cb"


def test_an_openid_client_naming_no_scopes_asks_for_profile_and_email(make_client, make_provider):
    assert make_client().scopes == DEFAULT_OIDC_SCOPES == ("openid", "profile", "email")
    assert make_client(scopes=("openid",)).scopes == ("openid",)
    assert make_client(scopes=("groups",)).scopes == ("openid", "groups")
    # A plain OAuth 2.0 provider has no OpenID scopes to ask for.
    assert make_client(provider=make_provider(oidc=False)).scopes == ()
