"""Tests of dash_oauth_otel.core.id_token: OIDC Core §3.1.3.7 ID token validation."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from dash_oauth_otel.core.id_token import MAX_ID_TOKEN_LENGTH
from dash_oauth_otel.core.id_token import check_refresh_continuity
from dash_oauth_otel.core.id_token import decode_unverified_claims
from dash_oauth_otel.core.id_token import validate_id_token
from dash_oauth_otel.core.id_token import verify_signature
from dash_oauth_otel.core.jwks import JWKSCache
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import NonceError

NOW = 1_700_000_000
LEEWAY = 30
ISSUER = "https://idp.example.com"
CLIENT = "client-123"
NONCE = "n-0S6_WzA2Mj-secret-nonce"
ACCESS_TOKEN = "SlAV32hkKG-access-token"
ALL_ALGS = ("RS256", "PS256", "ES256", "ES384", "EdDSA", "Ed25519")
ENTRA_ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0"
TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
DROP = object()

RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec"})
EC384 = ECKey.generate_key("P-384", parameters={"kid": "ec384"})
ED = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})
ATTACKER = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
SIGNING_KEYS: dict[str, RSAKey | ECKey | OKPKey] = {
    "RS256": RSA,
    "PS256": RSA,
    "ES256": EC,
    "ES384": EC384,
    "EdDSA": ED,
    "Ed25519": ED,
}
JWKS = {"keys": [dict(key.as_dict(private=False)) for key in (RSA, EC, EC384, ED)]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "user-1",
        "iat": NOW - 10,
        "exp": NOW + 300,
        "nonce": NONCE,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not DROP}


def sign(
    payload: dict[str, Any] | bytes | None = None,
    *,
    alg: str = "RS256",
    key: RSAKey | ECKey | OKPKey | None = None,
    **header: Any,
) -> str:
    """Sign with joserfc's algorithm; ``header`` adds to / (with DROP) removes from the default.

    The JWS is assembled here (RFC 7515 §7.1) so that tests can sign headers
    joserfc's serializer would refuse (unknown or ill-typed members).
    """
    key = key or SIGNING_KEYS[alg]
    protected: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": key.kid, **header}
    protected = {name: value for name, value in protected.items() if value is not DROP}
    body = payload if isinstance(payload, bytes) else json.dumps(payload or claims()).encode()
    signing_input = f"{b64(json.dumps(protected).encode())}.{b64(body)}"
    signature = JWSRegistry.algorithms[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


def raw_token(header: bytes | dict[str, Any], payload: bytes | dict[str, Any], sig: bytes) -> str:
    parts = [
        part if isinstance(part, bytes) else json.dumps(part).encode() for part in (header, payload)
    ]
    return ".".join([b64(parts[0]), b64(parts[1]), b64(sig)])


class Counter:
    def __init__(self, document: object = JWKS) -> None:
        self.document = document
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        return self.document


def make_cache(document: object = JWKS) -> JWKSCache:
    return JWKSCache(Counter(document), clock=lambda: NOW)


CACHE = make_cache()


def validate(token: object, **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "keys": CACHE,
        "issuer": ISSUER,
        "client_id": CLIENT,
        "allowed_algs": ALL_ALGS,
        "nonce": NONCE,
        "now": NOW,
        "leeway": LEEWAY,
    }
    arguments.update(options)
    return validate_id_token(token, **arguments)  # type: ignore[arg-type]


def rejected(
    token: object, reason: str, error: type[Exception] = IDTokenError, **options: Any
) -> None:
    with pytest.raises(error) as excinfo:
        validate(token, **options)
    assert getattr(excinfo.value, "reason", None) == reason
    message = str(excinfo.value)
    assert NONCE not in message and ACCESS_TOKEN not in message
    if isinstance(token, str) and token:
        assert token not in message


# -- happy paths --------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA", "Ed25519"])
def test_valid_token_accepted(alg: str) -> None:
    assert validate(sign(alg=alg)) == claims()


@pytest.mark.parametrize("alg", ["RS256", "ES384", "EdDSA"])
def test_at_hash_verified(alg: str) -> None:
    digest = {"RS256": hashlib.sha256, "ES384": hashlib.sha384, "EdDSA": hashlib.sha512}[alg]
    full = digest(ACCESS_TOKEN.encode()).digest()
    at_hash = b64(full[: len(full) // 2])
    token = sign(claims(at_hash=at_hash), alg=alg)
    assert validate(token, access_token=ACCESS_TOKEN)["at_hash"] == at_hash
    rejected(token, "at_hash_mismatch", access_token=ACCESS_TOKEN + "x")
    validate(token)  # no access token given: nothing to compare


def test_at_hash_not_a_string() -> None:
    rejected(sign(claims(at_hash=5)), "at_hash_mismatch", access_token=ACCESS_TOKEN)


def test_typ_optional_and_case_insensitive() -> None:
    validate(sign(typ=DROP))
    validate(sign(typ="jwt"))
    validate(sign(typ="application/JWT"))


def test_token_without_kid_uses_the_single_fitting_key() -> None:
    validate(sign(kid=DROP))


def test_unrelated_header_members_ignored() -> None:
    validate(sign(x5t="abc", foo="bar"))


def test_no_nonce_sent_means_none_checked() -> None:
    validate(sign(claims(nonce=DROP)), nonce=None)
    validate(sign(claims(nonce="whatever")), nonce=None)


# -- shape and header ---------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "a.b.c.d.e.f", "a+b.c.d", "é.b.c", " a.b.c", b"a.b.c", None, 42],
)
def test_malformed(token: object) -> None:
    rejected(token, "malformed")


def test_too_large() -> None:
    token = sign(claims(pad="x" * MAX_ID_TOKEN_LENGTH))
    rejected(token, "too_large")


def test_jwe_rejected() -> None:
    rejected("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "jwe_not_supported")


@pytest.mark.parametrize(
    "header",
    [b"not json", b"[1]", b'"RS256"', b"\xff\xfe", b'{"alg":NaN}', b"", b"[" * 5000],
)
def test_header_not_object(header: bytes) -> None:
    rejected(raw_token(header, claims(), b"sig"), "header_invalid")


def test_header_not_base64url() -> None:
    rejected("eyJhbGc$.e30.sig", "malformed")
    rejected("eyJhbGciOiJSUzI1NiJ9A.e30.c2ln", "header_invalid")  # bad length


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT"},
        {"alg": ["RS256"]},
        {"alg": "RS256", "kid": 1},
        {"alg": "RS256", "kid": ""},
        {"alg": "RS256", "kid": "k" * 129},
        {"alg": "RS256", "b64": False},
    ],
)
def test_header_invalid(header: dict[str, Any]) -> None:
    rejected(raw_token(header, claims(), b"sig"), "header_invalid")


def test_header_invalid_member_type_signed() -> None:
    rejected(sign(jku="not-a-url"), "header_invalid")


def test_duplicate_header_member() -> None:
    header = b'{"alg":"RS256","kid":"rsa","alg":"none"}'
    rejected(raw_token(header, claims(), b"sig"), "duplicate_member")


def test_duplicate_claim() -> None:
    body = json.dumps(claims())[:-1].encode() + b', "sub": "admin"}'
    rejected(sign(body), "duplicate_member")
    nested = json.dumps(claims())[:-1].encode() + b', "x": {"a": 1, "a": 2}}'
    rejected(sign(nested), "duplicate_member")


def test_alg_none_rejected() -> None:
    header = {"alg": "none", "typ": "JWT", "kid": "rsa"}
    rejected(raw_token(header, claims(), b""), "alg_not_allowed")
    rejected(raw_token({"alg": "None"}, claims(), b""), "alg_not_allowed")


def test_hs256_with_rsa_public_key_rejected() -> None:
    """Algorithm confusion: an HMAC keyed with the provider's public key bytes."""
    for secret in (RSA.as_pem(private=False), json.dumps(RSA.as_dict(private=False)).encode()):
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa"}).encode())
        payload = b64(json.dumps(claims()).encode())
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        rejected(f"{header}.{payload}.{b64(mac)}", "alg_not_allowed")


def test_joserfc_refuses_rsa_key_for_hmac() -> None:
    """Second layer: even past the allowlist, joserfc will not HMAC with an RSA key."""
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa"}).encode())
    payload = b64(json.dumps(claims()).encode())
    mac = hmac.new(RSA.as_pem(private=False), f"{header}.{payload}".encode(), hashlib.sha256)
    with pytest.raises(IDTokenError) as excinfo:
        verify_signature(f"{header}.{payload}.{b64(mac.digest())}", RSA, "HS256")
    assert excinfo.value.reason == "signature_invalid"


def test_alg_outside_allowlist_rejected() -> None:
    rejected(sign(alg="ES256"), "alg_not_allowed", allowed_algs=["RS256"])


@pytest.mark.parametrize(
    "allowed", [[], ["RS256", "none"], ["HS256"], ["RS256", "HS512"], "RS256", ["XX1"]]
)
def test_unsafe_allowlist_is_config_error(allowed: Any) -> None:
    with pytest.raises(ConfigError):
        validate(sign(), allowed_algs=allowed)


def test_typ_invalid() -> None:
    rejected(sign(typ="at+jwt"), "typ_invalid")
    rejected(sign(typ=1), "typ_invalid")


def test_crit_rejected() -> None:
    rejected(
        raw_token({"alg": "RS256", "crit": ["exp"], "exp": 1}, claims(), b"s"), "crit_not_supported"
    )
    rejected(sign(crit=[]), "crit_not_supported")


def test_unknown_kid() -> None:
    rejected(sign(kid="rotated-away"), "unknown_kid")


def test_signature_invalid() -> None:
    rejected(sign(key=ATTACKER), "signature_invalid")  # same kid, other key
    header, _, signature = sign().split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    rejected(f"{header}.{forged}.{signature}", "signature_invalid")
    rejected(f"{header}.{forged}.", "signature_invalid")
    header, payload, _ = sign(alg="ES256").split(".")
    rejected(f"{header}.{payload}.{b64(b'x' * 64)}", "signature_invalid")


def test_payload_not_object() -> None:
    rejected(sign(b"[1, 2]"), "malformed")
    rejected(sign(b"\xff"), "malformed")


# -- claims -------------------------------------------------------------------


@pytest.mark.parametrize("iss", [DROP, "https://evil.example.com", ISSUER + "/", 1, [ISSUER]])
def test_iss_mismatch(iss: Any) -> None:
    rejected(sign(claims(iss=iss)), "iss_mismatch")


@pytest.mark.parametrize("aud", [DROP, "other", [], [CLIENT, "other"], ["other"], 5, [CLIENT, 5]])
def test_aud_mismatch(aud: Any) -> None:
    rejected(sign(claims(aud=aud)), "aud_mismatch")


def test_aud_array_with_only_us() -> None:
    validate(sign(claims(aud=[CLIENT])))


def test_azp() -> None:
    validate(sign(claims(azp=CLIENT)))
    rejected(sign(claims(azp="other")), "azp_mismatch")


@pytest.mark.parametrize("sub", [DROP, "", "x" * 256, "usér", "a\nb", 12, None])
def test_sub_invalid(sub: Any) -> None:
    rejected(sign(claims(sub=sub)), "sub_invalid")


def test_sub_of_255_characters() -> None:
    validate(sign(claims(sub="x" * 255)))


def test_exp_leeway_boundaries() -> None:
    validate(sign(claims(exp=NOW - LEEWAY + 1, iat=NOW - 100)))
    rejected(sign(claims(exp=NOW - LEEWAY, iat=NOW - 100)), "expired")
    rejected(sign(claims(exp=NOW - LEEWAY - 1, iat=NOW - 100)), "expired")
    validate(sign(claims(exp=NOW - 1, iat=NOW - 100)), leeway=0, now=NOW - 2)


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_time_claims_required_and_numeric(claim: str) -> None:
    rejected(sign(claims(**{claim: DROP})), f"{claim}_missing")
    for bad in ("1700000000", True, None, [1]):
        rejected(sign(claims(**{claim: bad})), f"{claim}_invalid")


def test_infinite_number_invalid() -> None:
    body = json.dumps(claims(exp=0)).replace('"exp": 0', '"exp": 1e999').encode()
    rejected(sign(body), "exp_invalid")


def test_iat_in_future() -> None:
    validate(sign(claims(iat=NOW + LEEWAY)))
    rejected(sign(claims(iat=NOW + LEEWAY + 1)), "iat_in_future")


def test_lifetime_too_long() -> None:
    validate(sign(claims(iat=NOW, exp=NOW + 86400)))
    rejected(sign(claims(iat=NOW, exp=NOW + 86401)), "lifetime_too_long")
    rejected(sign(claims(iat=NOW, exp=NOW + 601)), "lifetime_too_long", max_lifetime=600)


def test_nbf() -> None:
    validate(sign(claims(nbf=NOW + LEEWAY)))
    rejected(sign(claims(nbf=NOW + LEEWAY + 1)), "not_yet_valid")
    rejected(sign(claims(nbf="soon")), "nbf_invalid")


def test_nonce_missing_is_nonce_error() -> None:
    rejected(sign(claims(nonce=DROP)), "nonce_missing", NonceError)
    with pytest.raises(NonceError) as excinfo:
        validate(sign(claims(nonce=DROP)))
    assert not isinstance(excinfo.value, IDTokenError)


@pytest.mark.parametrize(
    "token_nonce", ["other", NONCE + "x", NONCE.upper(), "", 5, None, "\ud800", "é"]
)
def test_nonce_mismatch(token_nonce: Any) -> None:
    rejected(sign(claims(nonce=token_nonce)), "nonce_mismatch", NonceError)


def test_auth_time_with_max_age() -> None:
    validate(sign(claims(auth_time=NOW - 600)), max_age=600)
    validate(sign(claims(auth_time=NOW - 600 - LEEWAY)), max_age=600)
    rejected(sign(claims(auth_time=NOW - 600 - LEEWAY - 1)), "auth_time_too_old", max_age=600)
    rejected(sign(claims()), "auth_time_missing", max_age=600)
    rejected(sign(claims(auth_time="yesterday")), "auth_time_invalid", max_age=600)
    validate(sign(claims()))  # no max_age: auth_time optional


# -- Microsoft Entra tenant-independent issuer --------------------------------


def entra(**changes: Any) -> str:
    issuer = ENTRA_ISSUER.replace("{tenantid}", TID)
    return sign(claims(**{"iss": issuer, "tid": TID, **changes}))


def test_tenant_independent_issuer_accepted() -> None:
    result = validate(entra(), issuer=ENTRA_ISSUER, tenant_independent=True)
    assert result["tid"] == TID


def test_tenant_independent_wrong_or_missing_tid() -> None:
    other = "00000000-0000-0000-0000-000000000001"
    options: dict[str, Any] = {"issuer": ENTRA_ISSUER, "tenant_independent": True}
    rejected(entra(tid=other), "iss_mismatch", **options)
    rejected(entra(tid=DROP), "tid_invalid", **options)
    rejected(entra(tid="common"), "tid_invalid", **options)
    rejected(entra(tid=TID + "/x"), "tid_invalid", **options)
    forged = ENTRA_ISSUER.replace("{tenantid}", "common")
    rejected(sign(claims(iss=forged, tid=TID)), "iss_mismatch", **options)


def test_tenant_template_needs_flag_and_vice_versa() -> None:
    with pytest.raises(ConfigError):
        validate(entra(), issuer=ENTRA_ISSUER)
    with pytest.raises(ConfigError):
        validate(sign(), tenant_independent=True)


def test_other_config_errors() -> None:
    for options in ({"issuer": ""}, {"client_id": ""}, {"leeway": -1}):
        with pytest.raises(ConfigError):
            validate(sign(), **options)


# -- refresh continuity (OIDC Core §12.2) -------------------------------------


def test_refresh_continuity_accepts_same_session() -> None:
    original = claims(auth_time=NOW - 50, aud=[CLIENT, "api"])
    check_refresh_continuity(original, claims(auth_time=NOW - 50, aud=["api", CLIENT], iat=NOW))
    check_refresh_continuity(original, claims(nonce=DROP, auth_time=DROP, aud=["api", CLIENT]))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://other"}, "refresh_continuity_iss"),
        ({"iss": DROP}, "refresh_continuity_iss"),
        ({"sub": "user-2"}, "refresh_continuity_sub"),
        ({"aud": [CLIENT, "more"]}, "refresh_continuity_aud"),
        ({"aud": "other"}, "refresh_continuity_aud"),
        ({"auth_time": NOW}, "refresh_continuity_auth_time"),
        ({"nonce": "other"}, "refresh_continuity_nonce"),
    ],
)
def test_refresh_continuity_breaks(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(IDTokenError) as excinfo:
        check_refresh_continuity(
            claims(auth_time=NOW - 50), claims(**{"auth_time": NOW - 50, **changes})
        )
    assert excinfo.value.reason == reason
    assert NONCE not in str(excinfo.value)


def test_refresh_continuity_keeps_the_provider_session() -> None:
    original = claims(sid="op-session-1")
    check_refresh_continuity(original, claims(sid="op-session-1"))
    check_refresh_continuity(original, claims())  # a refreshed token may omit sid
    for changed in (claims(sid="op-session-2"), claims(sid=None)):
        with pytest.raises(IDTokenError) as excinfo:
            check_refresh_continuity(original, changed)
        assert excinfo.value.reason == "refresh_continuity_sid"
    with pytest.raises(IDTokenError):
        check_refresh_continuity(claims(), claims(sid="op-session-1"))


def test_refresh_nonce_without_original_nonce() -> None:
    with pytest.raises(IDTokenError) as excinfo:
        check_refresh_continuity(claims(nonce=DROP), claims())
    assert excinfo.value.reason == "refresh_continuity_nonce"


# -- display-only decoding ----------------------------------------------------


def test_decode_unverified_claims() -> None:
    assert decode_unverified_claims(sign(key=ATTACKER)) == claims()
    with pytest.raises(IDTokenError) as excinfo:
        decode_unverified_claims("a.b")
    assert excinfo.value.reason == "malformed"
    with pytest.raises(IDTokenError) as excinfo:
        decode_unverified_claims(raw_token({}, b'{"a":1,"a":2}', b""))
    assert excinfo.value.reason == "duplicate_member"


# -- robustness ---------------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "none", "HS256"]) | _JSON,
        "kid": st.sampled_from(["rsa", "ec", "ed"]) | _JSON,
        "typ": st.sampled_from(["JWT", "jwt"]) | _JSON,
        "crit": _JSON,
    },
)
_FUZZ_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _only_validation_errors(token: object) -> None:
    with contextlib.suppress(IDTokenError, NonceError):
        validate(token, access_token=ACCESS_TOKEN, max_age=10)


@_FUZZ_SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_input_only_raises_validation_errors(token: bytes | str) -> None:
    _only_validation_errors(token)
    if isinstance(token, bytes):
        _only_validation_errors(token.decode("latin-1"))


@_FUZZ_SETTINGS
@given(st.lists(st.text(_B64, max_size=120), min_size=3, max_size=3))
def test_random_three_part_strings_only_raise_validation_errors(parts: list[str]) -> None:
    _only_validation_errors(".".join(parts))


@_FUZZ_SETTINGS
@given(_HEADERS, _JSON, st.binary(max_size=300))
def test_random_json_segments_only_raise_validation_errors(
    header: dict[str, Any], payload: Any, signature: bytes
) -> None:
    body = json.dumps(payload).encode()
    _only_validation_errors(raw_token(json.dumps(header).encode(), body, signature))


_CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | _JSON,
        "aud": st.sampled_from([CLIENT, [CLIENT]]) | _JSON,
        "azp": st.just(CLIENT) | _JSON,
        "sub": st.just("user-1") | _JSON,
        "exp": st.integers(NOW - 100, NOW + 100) | _JSON,
        "iat": st.integers(NOW - 100, NOW + 100) | _JSON,
        "nbf": st.integers(NOW - 100, NOW + 100) | _JSON,
        "nonce": st.just(NONCE) | _JSON,
        "auth_time": st.integers(NOW - 100, NOW) | _JSON,
        "at_hash": _JSON,
    },
)


@_FUZZ_SETTINGS
@given(_JSON | _CLAIMS, st.sampled_from(["RS256", "ES256", "EdDSA"]))
def test_signed_random_claims_only_raise_validation_errors(payload: Any, alg: str) -> None:
    _only_validation_errors(sign(json.dumps(payload).encode(), alg=alg))
