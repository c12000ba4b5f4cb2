"""Tests of dash_oauth_otel.core.logout_token: Back-Channel Logout 1.0 §2.6.

Tokens are signed here with joserfc against an in-test JWKS; the validator is
a pure function of the token, the key set and the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from dash_oauth_otel.core.jwks import JWKSCache
from dash_oauth_otel.core.logout_token import BACKCHANNEL_LOGOUT_EVENT
from dash_oauth_otel.core.logout_token import MAX_LOGOUT_TOKEN_AGE
from dash_oauth_otel.core.logout_token import check_logout_token
from dash_oauth_otel.core.logout_token import remember_jti
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import LogoutTokenError
from dash_oauth_otel.stores import MemoryStore

NOW = 1_700_000_000
LEEWAY = 30
ISSUER = "https://idp.example.com"
CLIENT = "client-123"
SECRET = "client-secret-used-as-hmac-key"
DROP = object()

RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec"})
ROTATED = RSAKey.generate_key(2048, parameters={"kid": "rotated"})
ATTACKER = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
JWKS = {"keys": [dict(key.as_dict(private=False)) for key in (RSA, EC)]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "user-1",
        "sid": "op-session-1",
        "iat": NOW - 5,
        "exp": NOW + 120,
        "jti": "jti-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not DROP}


def sign(
    payload: dict[str, Any] | None = None, *, alg: str = "RS256", key: Any = None, **header: Any
) -> str:
    key = key or (EC if alg.startswith("ES") else RSA)
    protected: dict[str, Any] = {"alg": alg, "typ": "logout+jwt", "kid": key.kid, **header}
    protected = {name: value for name, value in protected.items() if value is not DROP}
    body = json.dumps(claims() if payload is None else payload).encode()
    signing_input = f"{b64(json.dumps(protected).encode())}.{b64(body)}"
    signature = JWSRegistry.algorithms[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


class Fetch:
    def __init__(self, *documents: object) -> None:
        self.documents = list(documents) or [JWKS]
        self.calls = 0

    def __call__(self) -> object:
        document = self.documents[min(self.calls, len(self.documents) - 1)]
        self.calls += 1
        return document


def check(token: object, *, keys: JWKSCache | None = None, now: float = NOW, **options: Any):
    arguments: dict[str, Any] = {
        "keys": keys or JWKSCache(Fetch(), clock=lambda: NOW),
        "issuer": ISSUER,
        "client_id": CLIENT,
        "allowed_algs": ("RS256", "ES256"),
        "now": now,
        "leeway": LEEWAY,
    }
    arguments.update(options)
    return check_logout_token(token, **arguments)


def refused(token: object, **options: Any) -> str:
    with pytest.raises(LogoutTokenError) as caught:
        check(token, **options)
    assert caught.value.error == "invalid_logout_token"
    if isinstance(token, str) and token:
        assert token not in str(caught.value)
    return str(caught.value.reason)


# -- accepted ------------------------------------------------------------------------


def test_a_valid_token_gives_its_sid_sub_jti_and_times():
    found = check(sign())
    assert (found.sid, found.sub, found.jti, found.iat, found.exp) == (
        "op-session-1",
        "user-1",
        "jti-1",
        NOW - 5,
        NOW + 120,
    )
    assert found.valid_until == NOW + 120 + LEEWAY
    assert "op-session-1" not in repr(found) and "user-1" not in repr(found)


@pytest.mark.parametrize(
    "header", [{"typ": DROP}, {"typ": "application/logout+jwt"}, {"typ": "Logout+JWT"}]
)
def test_typ_may_be_absent_or_logout_jwt(header):
    assert check(sign(**header)).jti == "jti-1"


def test_sid_alone_sub_alone_and_an_audience_list_are_accepted():
    assert check(sign(claims(sub=DROP))).sub is None
    assert check(sign(claims(sid=DROP))).sid is None
    assert check(sign(claims(aud=["other", CLIENT]))).jti == "jti-1"


def test_without_exp_the_token_is_accepted_for_the_age_bound():
    found = check(sign(claims(exp=DROP)))
    assert found.exp is None
    assert found.valid_until == NOW - 5 + MAX_LOGOUT_TOKEN_AGE + LEEWAY


def test_an_ec_signature_is_accepted():
    assert check(sign(alg="ES256")).jti == "jti-1"


def test_an_unknown_kid_refetches_the_key_set_once():
    rotated = {"keys": [dict(ROTATED.as_dict(private=False))]}
    fetch = Fetch(JWKS, rotated)
    keys = JWKSCache(fetch, clock=lambda: NOW)
    assert check(sign(), keys=keys).jti == "jti-1"
    assert check(sign(key=ROTATED), keys=keys).jti == "jti-1"
    assert fetch.calls == 2


# -- refused: header and signature (§2.6 steps 2-3) -----------------------------------


def test_alg_none_is_refused():
    header = b64(json.dumps({"alg": "none", "typ": "logout+jwt"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    assert refused(token) == "alg_not_allowed"


def test_hmac_keyed_with_the_client_secret_is_refused():
    header = b64(json.dumps({"alg": "HS256", "typ": "logout+jwt"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert refused(f"{signing_input}.{b64(mac)}") == "alg_not_allowed"


def test_hmac_keyed_with_the_public_key_is_refused():
    public_pem = RSA.as_pem(private=False)
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert refused(f"{signing_input}.{b64(mac)}") == "alg_not_allowed"


def test_an_algorithm_outside_the_allowlist_is_refused():
    assert refused(sign(alg="ES256"), allowed_algs=("RS256",)) == "alg_not_allowed"


def test_a_signature_by_another_key_is_refused():
    assert refused(sign(key=ATTACKER)) == "bad_signature"


def test_a_tampered_payload_is_refused():
    header, _, signature = sign().split(".")
    payload = b64(json.dumps(claims(sub="someone-else")).encode())
    assert refused(f"{header}.{payload}.{signature}") == "bad_signature"


def test_an_unknown_kid_is_refused():
    assert refused(sign(key=ROTATED)) == "unknown_kid"


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "secevent+jwt", 7])
def test_another_explicit_typ_is_refused(typ):
    assert refused(sign(typ=typ)) == "wrong_typ"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d.e", 42, None, "x" * 20000])
def test_malformed_tokens_are_refused(token):
    assert refused(token) == "malformed"


def test_crit_is_refused():
    assert refused(sign(crit=["exp"])) == "header_invalid"


# -- refused: claims (§2.6 steps 4-7) ----------------------------------------------------


def test_a_wrong_issuer_is_refused():
    assert refused(sign(claims(iss=ISSUER + "/other"))) == "wrong_issuer"


@pytest.mark.parametrize("aud", ["another-client", ["a", "b"], DROP, 7])
def test_a_wrong_audience_is_refused(aud):
    assert refused(sign(claims(aud=aud))) == "wrong_audience"


@pytest.mark.parametrize("iat", [DROP, "1700000000", True, None])
def test_iat_is_required(iat):
    assert refused(sign(claims(iat=iat))) == "missing_iat"


def test_iat_in_the_future_is_refused_beyond_the_leeway():
    assert check(sign(claims(iat=NOW + LEEWAY))).jti == "jti-1"
    assert refused(sign(claims(iat=NOW + LEEWAY + 1))) == "iat_in_future"


def test_an_old_iat_is_refused():
    old = NOW - MAX_LOGOUT_TOKEN_AGE - LEEWAY - 1
    assert refused(sign(claims(iat=old, exp=DROP))) == "too_old"


def test_an_expired_token_is_refused():
    assert refused(sign(claims(exp=NOW - LEEWAY))) == "expired"
    assert refused(sign(claims(exp="soon"))) == "malformed"


@pytest.mark.parametrize("events", [DROP, [], "backchannel-logout", None])
def test_missing_events_is_refused(events):
    assert refused(sign(claims(events=events))) == "missing_events"


@pytest.mark.parametrize(
    "events",
    [
        {},
        {"http://schemas.openid.net/event/other": {}},
        {BACKCHANNEL_LOGOUT_EVENT: "yes"},
        {BACKCHANNEL_LOGOUT_EVENT: []},
    ],
)
def test_a_wrong_event_is_refused(events):
    assert refused(sign(claims(events=events))) == "wrong_event"


def test_neither_sid_nor_sub_is_refused():
    assert refused(sign(claims(sid=DROP, sub=DROP))) == "missing_sid_and_sub"


@pytest.mark.parametrize("changes", [{"sid": 7}, {"sub": ""}, {"sid": "s" * 256}])
def test_ill_typed_sid_or_sub_is_refused(changes):
    assert refused(sign(claims(**changes))) == "malformed"


def test_a_nonce_is_refused():
    assert refused(sign(claims(nonce="n-0S6"))) == "nonce_present"


@pytest.mark.parametrize("jti", [DROP, "", 7, "j" * 256])
def test_jti_is_required(jti):
    assert refused(sign(claims(jti=jti))) == "missing_jti"


def test_no_claim_value_appears_in_errors():
    with pytest.raises(LogoutTokenError) as caught:
        check(sign(claims(nonce="secret-nonce-value", sid="secret-sid")))
    assert "secret" not in str(caught.value) and "secret" not in repr(caught.value)


def test_hmac_or_none_cannot_be_allowlisted():
    with pytest.raises(ConfigError):
        check(sign(), allowed_algs=("RS256", "HS256"))
    with pytest.raises(ConfigError):
        check(sign(), allowed_algs=("none",))


# -- replay (§2.6 step 8) ---------------------------------------------------------------


def test_a_jti_is_accepted_once():
    store = MemoryStore(clock=lambda: NOW)
    found = check(sign())
    remember_jti(store, found, issuer=ISSUER, client_id=CLIENT, now=NOW)
    with pytest.raises(LogoutTokenError) as caught:
        remember_jti(store, found, issuer=ISSUER, client_id=CLIENT, now=NOW)
    assert caught.value.reason == "replayed_jti"
    # Another client of the same provider has its own memory.
    remember_jti(store, found, issuer=ISSUER, client_id="other-client", now=NOW)


def test_a_jti_is_remembered_while_the_token_is_acceptable():
    clock = [float(NOW)]
    store = MemoryStore(clock=lambda: clock[0])
    found = check(sign())
    remember_jti(store, found, issuer=ISSUER, client_id=CLIENT, now=NOW)
    clock[0] = found.valid_until - 1
    with pytest.raises(LogoutTokenError):
        remember_jti(store, found, issuer=ISSUER, client_id=CLIENT, now=clock[0])
    # Once forgotten, the same token is refused by its time checks instead.
    clock[0] = found.valid_until + 1
    assert refused(sign(), now=clock[0]) == "expired"
