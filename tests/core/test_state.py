"""Tests of dash_oauth_otel.core.state: sealed state, binding checks and one-time values."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.core.state import OneTimeValues
from dash_oauth_otel.core.state import StatePayload
from dash_oauth_otel.core.state import browser_digest
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.state import peek_one_time
from dash_oauth_otel.core.state import same_browser
from dash_oauth_otel.core.state import seal_state
from dash_oauth_otel.core.state import state_store_key
from dash_oauth_otel.core.state import store_one_time
from dash_oauth_otel.core.state import take_one_time
from dash_oauth_otel.core.state import verify_binding
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.stores import MemoryStore

BASE = "https://idp.example"
REDIRECT = "https://app.example/oauth/callback"
STATE_KEY = "state-key-Lq7Zx2Wm9Rv4Kt8Bn3Yc6Pd1HfGs"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_provider() -> Iterator[Callable[..., OAuthProvider]]:
    made: list[OAuthProvider] = []

    def make(**overrides: Any) -> OAuthProvider:
        options: dict[str, Any] = {
            "name": "idp",
            "issuer": BASE,
            "authorization_endpoint": f"{BASE}/authorize",
            "token_endpoint": f"{BASE}/token",
            "jwks_uri": f"{BASE}/jwks",
        }
        options.update(overrides)
        provider = OAuthProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def make_client(make_provider, clock: Clock) -> Callable[..., OAuthClient]:
    default_provider = make_provider()

    def make(**overrides: Any) -> OAuthClient:
        options: dict[str, Any] = {
            "provider": default_provider,
            "client_id": "app",
            "redirect_uri": REDIRECT,
            "client_secret": "secret",
            "scopes": ("profile", "email"),
            "state_key": STATE_KEY,
            "state_store": MemoryStore(),
            "clock": clock,
        }
        options.update(overrides)
        return OAuthClient(**options)

    return make


@pytest.fixture
def client(make_client) -> OAuthClient:
    return make_client()


def payload(**changes: Any) -> StatePayload:
    values: dict[str, Any] = {
        "state": "random-state",
        "client_id": "app",
        "redirect_uri": REDIRECT,
        "scopes": ("openid", "profile"),
        "provider": "p" * 64,
        "client_policy": "c" * 64,
        "issued_at": T0,
        "trace_id": "trace-1",
        "max_age": 300,
        "otel": {"traceparent": "00-abc-def-01"},
        "app": {"return_to": "/dash"},
    }
    values.update(changes)
    return StatePayload(**values)


def state_error(call: Callable[[], object]) -> StateError:
    with pytest.raises(StateError) as caught:
        call()
    return caught.value


# -- StatePayload JSON ----------------------------------------------------------


def test_json_round_trip() -> None:
    original = payload()
    data = json.loads(json.dumps(original.to_json()))
    assert StatePayload.from_json(data) == original


def test_json_uses_short_member_names() -> None:
    members = ["s", "cid", "ru", "sc", "pf", "cf", "iat", "tid", "ma", "ot", "app"]
    assert sorted(payload().to_json()) == sorted(members)


def test_optional_members_default() -> None:
    data = payload().to_json()
    for key in ("ma", "ot", "app"):
        del data[key]
    parsed = StatePayload.from_json(data)
    assert parsed.max_age is None
    assert parsed.otel == {}
    assert parsed.app == {}


def test_integer_issue_time_becomes_float() -> None:
    data = payload().to_json()
    data["iat"] = 1_700_000_000
    parsed = StatePayload.from_json(data)
    assert parsed.issued_at == 1_700_000_000.0
    assert isinstance(parsed.issued_at, float)


@pytest.mark.parametrize("key", ["s", "cid", "ru", "sc", "pf", "cf", "iat", "tid"])
def test_required_member_missing(key: str) -> None:
    data = payload().to_json()
    del data[key]
    error = state_error(lambda: StatePayload.from_json(data))
    assert error.reason == "payload_shape"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("s", 1),
        ("cid", None),
        ("ru", ["x"]),
        ("pf", {}),
        ("cf", 1.5),
        ("tid", True),
        ("sc", "openid profile"),
        ("sc", ["openid", 3]),
        ("sc", {"openid": True}),
        ("iat", "1700000000"),
        ("iat", True),
        ("iat", None),
        ("ma", True),
        ("ma", "300"),
        ("ma", 300.0),
        ("ot", {"traceparent": 1}),
        ("ot", "00-abc"),
        ("app", {"k": None}),
        ("app", ["x"]),
    ],
)
def test_member_of_wrong_type(key: str, value: object) -> None:
    data = payload().to_json()
    data[key] = value
    error = state_error(lambda: StatePayload.from_json(data))
    assert error.reason == "payload_shape"


# -- seal_state / open_state ----------------------------------------------------


def test_seal_and_open(client: OAuthClient) -> None:
    sealed, minted = seal_state(
        client, trace_id="trace-9", max_age=60, otel={"traceparent": "tp"}, app={"r": "/x"}
    )
    assert open_state(client, sealed) == minted
    assert minted.client_id == "app"
    assert minted.redirect_uri == REDIRECT
    assert minted.scopes == ("openid", "profile", "email")
    assert minted.provider == client.provider.fingerprint()
    assert minted.client_policy == client.policy_fingerprint()
    assert minted.issued_at == T0
    assert minted.trace_id == "trace-9"
    assert minted.max_age == 60


def test_minted_states_are_random_and_not_visible(client: OAuthClient) -> None:
    sealed_a, a = seal_state(client, trace_id="t", max_age=None, otel=None, app=None)
    sealed_b, b = seal_state(client, trace_id="t", max_age=None, otel=None, app=None)
    assert a.state != b.state
    assert len(a.state) >= 43
    assert a.state not in sealed_a
    assert sealed_a != sealed_b


def test_explicit_issue_time(client: OAuthClient) -> None:
    _, minted = seal_state(client, trace_id="t", max_age=None, otel=None, app=None, now=42.0)
    assert minted.issued_at == 42.0


def test_open_refuses_garbage(client: OAuthClient) -> None:
    assert state_error(lambda: open_state(client, "not/base64")).reason == "token_b64_invalid"
    assert state_error(lambda: open_state(client, None)).reason == "token_not_string"


def test_open_refuses_state_of_another_key(client: OAuthClient, make_client) -> None:
    other = make_client(state_key="another-key-h8oOOL8dKLzdocJ2isAjIhKtJ0Rl")
    sealed, _ = seal_state(other, trace_id="t", max_age=None, otel=None, app=None)
    assert state_error(lambda: open_state(client, sealed)).reason == "gcm_auth_failed"


def test_open_refuses_blob_sealed_for_the_store(client: OAuthClient) -> None:
    blob = client.store_sealer.seal(payload().to_json())
    assert state_error(lambda: open_state(client, blob)).reason == "gcm_auth_failed"


def test_open_refuses_authentic_blob_of_wrong_shape(client: OAuthClient) -> None:
    blob = client.state_sealer.seal({"s": "x"})
    assert state_error(lambda: open_state(client, blob)).reason == "payload_shape"


# -- verify_binding -------------------------------------------------------------


def minted(client: OAuthClient, **kwargs: Any) -> StatePayload:
    return seal_state(client, trace_id="t", max_age=None, otel=None, app=None, **kwargs)[1]


def binding_reason(client: OAuthClient, state: StatePayload, **kwargs: float) -> str | None:
    error = state_error(lambda: verify_binding(client, state, **kwargs))
    assert error.phase == "callback.state_payload"
    assert state.state not in str(error)
    return error.reason


def test_binding_accepts_own_fresh_state(client: OAuthClient) -> None:
    verify_binding(client, minted(client))


def test_binding_ignores_scope_order(client: OAuthClient, make_client) -> None:
    reordered = make_client(scopes=("email", "profile"))
    verify_binding(reordered, minted(client))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"client_id": "other-app"}, "client_mismatch"),
        ({"redirect_uri": "https://app.example/other"}, "redirect_uri_mismatch"),
        ({"scopes": ("profile",)}, "scope_mismatch"),
        ({"response_mode": "form_post"}, "client_policy_mismatch"),
        ({"fetch_userinfo": False}, "client_policy_mismatch"),
    ],
)
def test_binding_to_the_client(client: OAuthClient, make_client, change, reason: str) -> None:
    assert binding_reason(make_client(**change), minted(client)) == reason


def test_binding_to_the_provider(client: OAuthClient, make_client, make_provider) -> None:
    moved = make_provider(token_endpoint=f"{BASE}/other-token")
    assert binding_reason(make_client(provider=moved), minted(client)) == "provider_mismatch"


def test_binding_detects_edited_payload(client: OAuthClient) -> None:
    state = minted(client)
    forged = StatePayload(**{**state.__dict__, "client_policy": "0" * 64})
    assert binding_reason(client, forged) == "client_policy_mismatch"


def test_future_issue_within_leeway_accepted(client: OAuthClient) -> None:
    leeway = client.provider.leeway
    verify_binding(client, minted(client, now=T0 + leeway), now=T0)


def test_future_issue_beyond_leeway_refused(client: OAuthClient) -> None:
    leeway = client.provider.leeway
    state = minted(client, now=T0 + leeway + 1)
    assert binding_reason(client, state, now=T0) == "issued_in_future"


def test_expiry_boundary(client: OAuthClient) -> None:
    state = minted(client)
    verify_binding(client, state, now=T0 + client.state_ttl)
    assert binding_reason(client, state, now=T0 + client.state_ttl + 0.001) == "expired"


def test_expiry_uses_the_client_clock(client: OAuthClient, clock: Clock) -> None:
    state = minted(client)
    clock.now = T0 + 299
    verify_binding(client, state)
    clock.now = T0 + 301
    assert binding_reason(client, state) == "expired"


def test_future_issue_uses_the_client_clock(client: OAuthClient, clock: Clock) -> None:
    state = minted(client)
    clock.now = T0 - 31
    assert binding_reason(client, state) == "issued_in_future"


def test_expiry_follows_state_ttl(make_client) -> None:
    short = make_client(state_ttl=30)
    state = minted(short)
    assert binding_reason(short, state, now=T0 + 31) == "expired"


def test_expired_message_is_user_facing(client: OAuthClient) -> None:
    error = state_error(lambda: verify_binding(client, minted(client), now=T0 + 10_000))
    assert "sign in again" in error.message


# -- browser binding ------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["a" * 32, "Z" * 256, "abcXYZ019-_" * 3, secrets.token_urlsafe(32)]
)
def test_browser_token_accepted(token: str) -> None:
    assert check_browser_token(token) == token


@pytest.mark.parametrize(
    "token",
    [
        None,
        b"a" * 32,
        32,
        "",
        "a" * 31,
        "a" * 257,
        "a" * 31 + "+",
        "a" * 31 + "/",
        "a" * 31 + "=",
        "a" * 31 + " ",
        "a" * 31 + ".",
        "a" * 31 + "é",
        "a" * 32 + "\n",
    ],
)
def test_browser_token_refused(token: object) -> None:
    with pytest.raises(InputError) as caught:
        check_browser_token(token)
    assert caught.value.reason == "browser_token_invalid"
    assert caught.value.phase == "callback.browser_token_validation"
    if isinstance(token, str) and token:
        assert token not in str(caught.value)


def test_browser_digest_and_comparison() -> None:
    token = secrets.token_urlsafe(32)
    expected = browser_digest(token)
    assert expected == browser_digest(token)
    assert len(expected) == 64
    assert token not in expected
    assert expected != hashlib.sha256(token.encode()).hexdigest()  # domain-separated
    assert same_browser(expected, token)
    assert not same_browser(expected, secrets.token_urlsafe(32))
    tampered = expected[:-1] + ("1" if expected.endswith("0") else "0")
    assert not same_browser(tampered, token)


# -- store key and one-time values ----------------------------------------------


def test_store_key_is_a_hash_of_the_state() -> None:
    state = secrets.token_urlsafe(32)
    key = state_store_key(state)
    assert key == "state:" + hashlib.sha256(state.encode()).hexdigest()
    assert state not in key
    assert state_store_key(state + "x") != key


def values() -> OneTimeValues:
    return OneTimeValues(code_verifier="v" * 64, nonce="nonce-value", browser_digest="b" * 64)


def test_one_time_values_taken_once(client: OAuthClient) -> None:
    state = minted(client)
    store_one_time(client, state, values())
    assert peek_one_time(client, state) == values()
    assert take_one_time(client, state) == values()
    assert take_one_time(client, state) is None
    assert peek_one_time(client, state) is None


def test_one_time_values_sealed_in_store(client: OAuthClient) -> None:
    state = minted(client)
    store_one_time(client, state, values())
    raw = client.state_store.get(state_store_key(state.state))  # type: ignore[union-attr]
    assert raw is not None
    assert b"v" * 64 not in raw
    assert b"nonce-value" not in raw
    assert client.state_store.get(state.state) is None  # type: ignore[union-attr]


def test_nonce_may_be_absent(client: OAuthClient) -> None:
    state = minted(client)
    absent = OneTimeValues(code_verifier="v" * 64, nonce=None, browser_digest="b" * 64)
    store_one_time(client, state, absent)
    assert take_one_time(client, state) == absent


def test_unknown_state_has_no_values(client: OAuthClient) -> None:
    assert take_one_time(client, payload(state="never-stored")) is None


def test_values_of_another_key_refused(client: OAuthClient, make_client) -> None:
    state = minted(client)
    other = make_client(
        state_key="another-key-gLKOmxgJTeKdNnFRIBXuDL7DxtpY", state_store=client.state_store
    )
    store_one_time(other, state, values())
    assert state_error(lambda: take_one_time(client, state)).reason == "gcm_auth_failed"


def test_malformed_stored_values_refused(client: OAuthClient) -> None:
    state = minted(client)
    blob = client.store_sealer.seal({"v": 1, "n": None, "b": "x"})
    client.state_store.set(state_store_key(state.state), blob.encode(), 60)  # type: ignore[union-attr]
    error = state_error(lambda: take_one_time(client, state))
    assert error.reason == "store_shape"
    assert error.phase == "callback.state_store_consume"


def test_missing_store_is_a_config_error(make_client) -> None:
    client = make_client(state_store=None)
    state = minted(client)
    with pytest.raises(ConfigError):
        store_one_time(client, state, values())
    with pytest.raises(ConfigError):
        take_one_time(client, state)


class BrokenStore(MemoryStore):
    def set(self, key: str, value: bytes, ttl: float) -> None:
        raise OSError("disk full at /secret/path")

    def get(self, key: str) -> bytes | None:
        raise OSError("connection reset")

    def take(self, key: str) -> bytes | None:
        raise OSError("connection reset")


@pytest.mark.parametrize(
    ("operation", "phase"),
    [
        (lambda c, s: store_one_time(c, s, values()), "login.request"),
        (peek_one_time, "callback.state_store_lookup"),
        (take_one_time, "callback.state_store_consume"),
    ],
)
def test_store_failures_become_store_errors(make_client, operation, phase: str) -> None:
    client = make_client(state_store=BrokenStore())
    with pytest.raises(StoreError) as caught:
        operation(client, minted(client))
    assert caught.value.phase == phase
    assert "/secret/path" not in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
