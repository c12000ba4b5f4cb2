"""Tests of dash_oauth_otel.core.jwks: JWKS parsing and the rate-limited cache."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey

from dash_oauth_otel.core.jwks import MAX_KEYS
from dash_oauth_otel.core.jwks import JWKSCache
from dash_oauth_otel.core.jwks import JWKSet
from dash_oauth_otel.core.jwks import parse_jwks
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import JWKSError

RSA_A = RSAKey.generate_key(2048, parameters={"kid": "rsa-a"})
RSA_B = RSAKey.generate_key(2048, parameters={"kid": "rsa-b"})
EC_256 = ECKey.generate_key("P-256", parameters={"kid": "ec-256"})
EC_384 = ECKey.generate_key("P-384", parameters={"kid": "ec-384"})
ED_25519 = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})


def public(key: RSAKey | ECKey | OKPKey, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = dict(key.as_dict(private=False))
    data.update(extra)
    return {name: value for name, value in data.items() if value is not None}


def b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def reason_of(excinfo: pytest.ExceptionInfo[Exception]) -> str | None:
    return getattr(excinfo.value, "reason", None)


# -- parse_jwks ---------------------------------------------------------------


def test_parse_keeps_public_signature_keys() -> None:
    key_set = parse_jwks({"keys": [public(RSA_A), public(EC_256), public(ED_25519)]})
    assert isinstance(key_set, JWKSet)
    assert [key.kid for key in key_set] == ["rsa-a", "ec-256", "ed"]
    assert len(key_set) == 3
    assert not any(key.is_private for key in key_set)
    assert key_set.ignored == 0


def test_parse_keeps_missing_kid_missing() -> None:
    entry = public(RSA_A)
    del entry["kid"]
    (key,) = parse_jwks({"keys": [entry]})
    assert key.kid is None  # no RFC 7638 thumbprint made up


@pytest.mark.parametrize("document", [[], "keys", None, 3])
def test_not_object(document: object) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks(document)
    assert reason_of(excinfo) == "jwks_not_object"


@pytest.mark.parametrize("document", [{}, {"keys": {}}, {"keys": "x"}, {"keys": None}])
def test_keys_not_array(document: object) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks(document)
    assert reason_of(excinfo) == "jwks_keys_not_array"


def test_too_many_keys() -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_A)] * (MAX_KEYS + 1)})
    assert reason_of(excinfo) == "jwks_too_many_keys"


def test_max_keys_accepted() -> None:
    entries = [{"kty": "AKP", "kid": str(i)} for i in range(MAX_KEYS - 1)] + [public(RSA_A)]
    key_set = parse_jwks({"keys": entries})
    assert len(key_set) == 1
    assert key_set.ignored == MAX_KEYS - 1


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_private_member_rejected(member: str) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_A, **{member: "AQAB"})]})
    assert reason_of(excinfo) == "jwks_private_key_member"


@pytest.mark.parametrize("key", [RSA_A, EC_256, ED_25519])
def test_private_key_rejected(key: RSAKey | ECKey | OKPKey) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_B), dict(key.as_dict(private=True))]})
    assert reason_of(excinfo) == "jwks_private_key_member"


def test_private_member_rejected_even_on_ignored_key() -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_B), public(RSA_A, use="enc", d="AQAB")]})
    assert reason_of(excinfo) == "jwks_private_key_member"


def test_oct_key_rejected() -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_A), {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})
    assert reason_of(excinfo) == "jwks_private_key_member"
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_A), {"kty": "oct", "kid": "h"}]})
    assert reason_of(excinfo) == "jwks_symmetric_key"


def test_weak_rsa_key_rejected() -> None:
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the weak key under test
    numbers = weak.public_key().public_numbers()
    entry = {"kty": "RSA", "kid": "weak", "n": b64(numbers.n), "e": b64(numbers.e)}
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [entry]})
    assert reason_of(excinfo) == "jwks_weak_rsa_key"


@pytest.mark.parametrize("kid", [7, None, ["a"], "", "k" * 129])
def test_invalid_kid(kid: object) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_A) | {"kid": kid}]})
    assert reason_of(excinfo) == "jwks_invalid_kid"


def test_kid_of_128_characters_accepted() -> None:
    (key,) = parse_jwks({"keys": [public(RSA_A, kid="k" * 128)]})
    assert key.kid == "k" * 128


@pytest.mark.parametrize(
    "entry",
    [
        "not-an-object",
        {"kid": "no-kty", "n": "AQAB", "e": "AQAB"},
        {"kty": 3},
        {"kty": "RSA", "kid": "x", "e": "AQAB"},
        {"kty": "RSA", "kid": "x", "n": "a+b/", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
        {"kty": "RSA", "kid": "x", "alg": 256, "n": "AQAB", "e": "AQAB"},
    ],
)
def test_invalid_key(entry: object) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": [public(RSA_A), entry]})
    assert reason_of(excinfo) == "jwks_invalid_key"


@pytest.mark.parametrize(
    "entry",
    [
        public(RSA_B, use="enc"),
        public(RSA_B, use=None) | {"key_ops": ["encrypt"]},
        {"kty": "AKP", "kid": "pq", "pub": "AAAA"},
        {"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x"},
    ],
)
def test_non_signature_keys_ignored(entry: dict[str, Any]) -> None:
    key_set = parse_jwks({"keys": [public(RSA_A), entry]})
    assert [key.kid for key in key_set] == ["rsa-a"]
    assert key_set.ignored == 1


@pytest.mark.parametrize("entries", [[], [public(RSA_A, use="enc")], [{"kty": "AKP"}]])
def test_no_usable_keys(entries: list[Any]) -> None:
    with pytest.raises(JWKSError) as excinfo:
        parse_jwks({"keys": entries})
    assert reason_of(excinfo) == "jwks_no_usable_keys"


def test_key_ops_with_verify_kept() -> None:
    (key,) = parse_jwks({"keys": [public(RSA_A) | {"key_ops": ["verify"], "x5c": ["junk"]}]})
    assert key.kid == "rsa-a"


def test_candidates_follow_kty_crv_and_key_alg() -> None:
    key_set = parse_jwks(
        {
            "keys": [
                public(RSA_A, alg="RS512"),
                public(RSA_B),
                public(EC_256),
                public(EC_384),
                public(ED_25519),
            ]
        }
    )
    assert [k.kid for k in key_set.candidates(None, "RS256")] == ["rsa-b"]
    assert [k.kid for k in key_set.candidates(None, "RS512")] == ["rsa-a", "rsa-b"]
    assert [k.kid for k in key_set.candidates("rsa-a", "RS256")] == []
    assert [k.kid for k in key_set.candidates(None, "ES256")] == ["ec-256"]
    assert [k.kid for k in key_set.candidates(None, "ES384")] == ["ec-384"]
    assert [k.kid for k in key_set.candidates("ec-384", "ES256")] == []
    assert [k.kid for k in key_set.candidates(None, "EdDSA")] == ["ed"]
    assert [k.kid for k in key_set.candidates(None, "Ed25519")] == ["ed"]
    assert key_set.candidates(None, "Ed448") == []
    assert key_set.candidates("rsa-b", "HS256") == []
    assert key_set.candidates("RSA-B", "RS256") == []  # exact match only


# -- JWKSCache ----------------------------------------------------------------


class FakeProvider:
    """A fetch callable with a settable document and a call counter."""

    def __init__(self, *keys: RSAKey | ECKey | OKPKey) -> None:
        self.document: object = {"keys": [public(key) for key in keys]}
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self) -> object:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.document

    def publish(self, *keys: RSAKey | ECKey | OKPKey) -> None:
        self.document = {"keys": [public(key) for key in keys]}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_keys_fetched_once_then_cached_until_ttl() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, ttl=100, clock=clock)
    assert provider.calls == 0  # lazy
    key_set = cache.keys()
    assert [k.kid for k in key_set] == ["rsa-a"]
    clock.now += 99
    cache.keys()
    assert provider.calls == 1
    provider.publish(RSA_B)
    clock.now += 1  # age == ttl: stale
    key_set = cache.keys()
    assert [k.kid for k in key_set] == ["rsa-b"]
    assert provider.calls == 2


def test_known_kid_served_from_cache() -> None:
    provider, clock = FakeProvider(RSA_A, EC_256), Clock()
    cache = JWKSCache(provider, clock=clock)
    assert cache.key_for("rsa-a", "RS256").kid == "rsa-a"
    assert cache.key_for("ec-256", "ES256").kid == "ec-256"
    assert provider.calls == 1


def test_unknown_kid_refetches_once_and_finds_rotated_key() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, refetch_interval=30, clock=clock)
    cache.keys()
    provider.publish(RSA_A, RSA_B)
    clock.now += 31
    assert cache.key_for("rsa-b", "RS256").kid == "rsa-b"
    assert provider.calls == 2
    assert cache.key_for("rsa-b", "RS256").kid == "rsa-b"
    assert provider.calls == 2


def test_unknown_kid_rate_limited() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, refetch_interval=30, clock=clock)
    cache.keys()
    clock.now += 31
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for("random-1", "RS256")
    assert reason_of(excinfo) == "unknown_kid"
    assert provider.calls == 2  # the one permitted refetch
    clock.now += 29
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for("random-2", "RS256")
    assert reason_of(excinfo) == "unknown_kid"
    assert provider.calls == 2  # within the interval: no fetch
    clock.now += 1
    provider.publish(RSA_A, RSA_B)
    assert cache.key_for("rsa-b", "RS256").kid == "rsa-b"
    assert provider.calls == 3  # after the interval: refetch allowed


def test_no_refetch_right_after_first_fetch() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, clock=clock)
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for("other", "RS256")
    assert reason_of(excinfo) == "unknown_kid"
    assert provider.calls == 1  # the set fetched a moment ago is the newest


def test_unknown_kid_after_ttl_is_one_fetch() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, ttl=100, clock=clock)
    cache.keys()
    clock.now += 200
    with pytest.raises(IDTokenError):
        cache.key_for("other", "RS256")
    assert provider.calls == 2


def test_without_kid_exactly_one_fitting_key() -> None:
    provider, clock = FakeProvider(RSA_A, EC_256), Clock()
    cache = JWKSCache(provider, clock=clock)
    assert cache.key_for(None, "RS256").kid == "rsa-a"
    assert cache.key_for(None, "ES256").kid == "ec-256"
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for(None, "ES384")
    assert reason_of(excinfo) == "unknown_kid"


def test_without_kid_several_fitting_keys_ambiguous() -> None:
    cache = JWKSCache(FakeProvider(RSA_A, RSA_B), clock=Clock())
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for(None, "RS256")
    assert reason_of(excinfo) == "kid_ambiguous"


def test_duplicate_kid_ambiguous() -> None:
    provider = FakeProvider()
    provider.document = {"keys": [public(RSA_A), public(RSA_B, kid="rsa-a")]}
    cache = JWKSCache(provider, clock=Clock())
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for("rsa-a", "RS256")
    assert reason_of(excinfo) == "kid_ambiguous"


@pytest.mark.parametrize("alg", ["none", "HS256", "RSA-OAEP", ""])
def test_unsupported_alg_never_fetches(alg: str) -> None:
    provider = FakeProvider(RSA_A)
    cache = JWKSCache(provider, clock=Clock())
    with pytest.raises(IDTokenError) as excinfo:
        cache.key_for("rsa-a", alg)
    assert reason_of(excinfo) == "alg_not_allowed"
    assert provider.calls == 0


def test_key_alg_member_respected() -> None:
    provider = FakeProvider()
    provider.document = {"keys": [public(RSA_A, alg="PS256")]}
    cache = JWKSCache(provider, clock=Clock())
    assert cache.key_for("rsa-a", "PS256").kid == "rsa-a"
    with pytest.raises(IDTokenError):
        cache.key_for("rsa-a", "RS256")


def test_fetch_errors_propagate_and_cache_survives() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, ttl=100, clock=clock)
    cache.keys()
    provider.error = RuntimeError("provider down")
    clock.now += 50
    with pytest.raises(RuntimeError):
        cache.key_for("rotated", "RS256")
    assert cache.key_for("rsa-a", "RS256").kid == "rsa-a"  # still cached
    provider.error = None
    provider.document = {"keys": "broken"}
    clock.now += 100
    with pytest.raises(JWKSError) as excinfo:
        cache.keys()
    assert reason_of(excinfo) == "jwks_keys_not_array"


def test_concurrent_first_use_fetches_once() -> None:
    provider = FakeProvider(RSA_A)

    def slow_fetch() -> object:
        time.sleep(0.05)
        return provider()

    cache = JWKSCache(slow_fetch)
    results: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.key_for("rsa-a", "RS256").kid))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["rsa-a"] * 8
    assert provider.calls == 1


def test_clock_going_backwards_refetches() -> None:
    provider, clock = FakeProvider(RSA_A), Clock()
    cache = JWKSCache(provider, clock=clock)
    cache.keys()
    clock.now -= 10
    cache.keys()
    assert provider.calls == 2


@pytest.mark.parametrize(("ttl", "interval"), [(0, 30), (-1, 30), (10, -1)])
def test_bad_cache_settings(ttl: float, interval: float) -> None:
    with pytest.raises(ConfigError):
        JWKSCache(FakeProvider(RSA_A), ttl=ttl, refetch_interval=interval)
