"""Tests of dash_oauth_otel.core.sealing: AES-GCM sealing with reason codes."""

from __future__ import annotations

import base64
import secrets

import pytest

from dash_oauth_otel.core.sealing import MAX_SEALED_CHARS
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.sealing import normalize_secret
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StateError

SECRET = "sealing-secret-Wq4Zx8Lm2Rv7Kt9Bn3Yc6Pd1Hf"
OTHER_SECRET = "other-secret-Pn6Ty2Wq8Zr3Lm9Vx5Bk7Cd4Hj"
PAYLOAD = {"s": "random-state", "n": 3, "nested": {"k": ["v"]}}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def unseal_reason(sealer: Sealer, token: object, **kwargs: int) -> str | None:
    with pytest.raises(StateError) as caught:
        sealer.unseal(token, **kwargs)
    assert isinstance(caught.value.message, str)
    return caught.value.reason


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(SECRET, "state")


# -- secrets --------------------------------------------------------------------


def test_normalize_secret_accepts_32_bytes_of_str_or_bytes() -> None:
    drawn = secrets.token_urlsafe(32)
    assert normalize_secret(drawn) == drawn.encode()
    assert normalize_secret(bytes(range(32))) == bytes(range(32))
    assert normalize_secret(bytearray(range(40))) == bytes(range(40))


def test_normalize_secret_counts_utf8_bytes_not_characters() -> None:
    # 10 characters of 3 UTF-8 bytes each: 30 bytes.
    with pytest.raises(ConfigError, match="32 bytes"):
        normalize_secret("€" * 10)
    assert len(normalize_secret("€äöü¢£¥§©®±µ" * 2)) == 50


@pytest.mark.parametrize(
    "secret",
    [
        "k" * 32,
        b"\x00" * 32,
        "abc" * 20,
        "at least 32 bytes of secret material, same on every worker",
        "please-change-me-before-production-0123456789",
    ],
)
def test_normalize_secret_refuses_what_is_plainly_not_secret(secret: str | bytes) -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_secret(secret, what="state_key")
    assert "state_key" in caught.value.message
    assert "secrets.token_urlsafe(32)" in caught.value.message


@pytest.mark.parametrize("secret", ["", "short", "k" * 31, b"k" * 31])
def test_normalize_secret_refuses_short(secret: str | bytes) -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_secret(secret, what="cookie_key")
    assert "cookie_key" in caught.value.message
    assert "32 bytes" in caught.value.message


def test_sealer_refuses_short_secret() -> None:
    with pytest.raises(ConfigError):
        Sealer("k" * 31, "state")


# -- round trip -----------------------------------------------------------------


def test_round_trip(sealer: Sealer) -> None:
    assert sealer.unseal(sealer.seal(PAYLOAD)) == PAYLOAD


def test_sealed_token_is_unpadded_base64url(sealer: Sealer) -> None:
    token = sealer.seal(PAYLOAD)
    assert token.isascii()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = unb64(token)
    assert raw[0] == 1  # version byte


def test_each_seal_uses_a_fresh_nonce(sealer: Sealer) -> None:
    first, second = sealer.seal(PAYLOAD), sealer.seal(PAYLOAD)
    assert first != second
    assert unb64(first)[1:13] != unb64(second)[1:13]
    assert sealer.unseal(first) == sealer.unseal(second) == PAYLOAD


def test_plaintext_is_not_visible_in_token(sealer: Sealer) -> None:
    raw = unb64(sealer.seal({"secret": "plain-text-marker"}))
    assert b"plain-text-marker" not in raw


def test_same_secret_and_purpose_interoperate() -> None:
    token = Sealer(SECRET, "state").seal(PAYLOAD)
    assert Sealer(SECRET.encode(), "state").unseal(token) == PAYLOAD


def test_repr_names_purpose_only(sealer: Sealer) -> None:
    text = repr(sealer)
    assert "state" in text
    assert SECRET not in text


# -- refusals -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, 3, b"abc", ["x"], {"t": "x"}])
def test_non_string(sealer: Sealer, token: object) -> None:
    assert unseal_reason(sealer, token) == "token_not_string"


def test_empty(sealer: Sealer) -> None:
    assert unseal_reason(sealer, "") == "token_empty"


def test_too_large_is_refused_before_decoding(sealer: Sealer) -> None:
    assert unseal_reason(sealer, "A" * (MAX_SEALED_CHARS + 1)) == "token_too_large"
    # Even characters that are not base64url: the size check comes first.
    assert unseal_reason(sealer, "!" * (MAX_SEALED_CHARS + 1)) == "token_too_large"


def test_max_chars_is_configurable(sealer: Sealer) -> None:
    token = sealer.seal(PAYLOAD)
    assert unseal_reason(sealer, token, max_chars=len(token) - 1) == "token_too_large"
    assert sealer.unseal(token, max_chars=len(token)) == PAYLOAD


@pytest.mark.parametrize(
    "token",
    [
        "abc=",  # padding
        "ab+c",  # standard alphabet
        "ab/c",
        "ab c",
        "ab\tc",
        "abc\n",
        "abcé",  # non-ASCII
        "A" * 45,  # length 1 mod 4 cannot be base64
    ],
)
def test_not_base64url(sealer: Sealer, token: str) -> None:
    assert unseal_reason(sealer, token) == "token_b64_invalid"


@pytest.mark.parametrize("junk", ["!", ".", "~"])
def test_foreign_character_inside_valid_token_is_refused(sealer: Sealer, junk: str) -> None:
    token = sealer.seal(PAYLOAD)
    # Four characters keep the length a multiple of the base64 quantum.
    tampered = token[:10] + junk * 4 + token[10:]
    assert unseal_reason(sealer, tampered) == "token_b64_invalid"


def test_too_short(sealer: Sealer) -> None:
    # version + nonce + tag + 1 byte: one byte under the smallest sealed "{}".
    assert unseal_reason(sealer, b64(b"\x01" + b"\x00" * 29)) == "token_too_short"


def test_unknown_version(sealer: Sealer) -> None:
    raw = bytearray(unb64(sealer.seal(PAYLOAD)))
    raw[0] = 2
    assert unseal_reason(sealer, b64(bytes(raw))) == "token_version_mismatch"


@pytest.mark.parametrize("index", [1, 12, 13, -1])
def test_bit_flip_fails_authentication(sealer: Sealer, index: int) -> None:
    raw = bytearray(unb64(sealer.seal(PAYLOAD)))
    raw[index] ^= 0x01
    assert unseal_reason(sealer, b64(bytes(raw))) == "gcm_auth_failed"


def test_truncated_tag_fails_authentication(sealer: Sealer) -> None:
    raw = unb64(sealer.seal(PAYLOAD))
    assert unseal_reason(sealer, b64(raw[:-1])) == "gcm_auth_failed"


def test_other_secret_fails_authentication(sealer: Sealer) -> None:
    token = Sealer(OTHER_SECRET, "state").seal(PAYLOAD)
    assert unseal_reason(sealer, token) == "gcm_auth_failed"


def test_other_purpose_fails_authentication(sealer: Sealer) -> None:
    token = Sealer(SECRET, "session").seal(PAYLOAD)
    assert unseal_reason(sealer, token) == "gcm_auth_failed"


def test_authentication_failure_message_holds_no_payload(sealer: Sealer) -> None:
    token = Sealer(OTHER_SECRET, "state").seal({"secret": "marker-value"})
    with pytest.raises(StateError) as caught:
        sealer.unseal(token)
    assert "marker-value" not in str(caught.value)
    assert token not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("payload", [[1, 2], "text", 700])
def test_authentic_non_object_payload_is_refused(sealer: Sealer, payload: object) -> None:
    token = sealer.seal(payload)  # type: ignore[arg-type]
    assert unseal_reason(sealer, token) == "payload_json_invalid"


def test_authentic_payload_with_nan_is_refused(sealer: Sealer) -> None:
    token = sealer.seal({"x": float("nan")})
    assert unseal_reason(sealer, token) == "payload_json_invalid"
