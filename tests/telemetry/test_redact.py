"""Tests of dash_oauth_otel.telemetry.redact: keyed digests and the digest key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.telemetry import redact

KEY = "shared-digest-key-" + "k" * 32


@pytest.fixture(autouse=True)
def restore_key() -> Iterator[None]:
    saved = redact.get_digest_key()
    yield
    redact.set_digest_key(saved)


def test_none_has_no_digest() -> None:
    assert redact.digest(None) is None


def test_digest_is_hmac_sha256_under_the_key() -> None:
    redact.set_digest_key(KEY)
    expected = hmac.new(KEY.encode(), b"user-42", hashlib.sha256).hexdigest()
    assert redact.digest("user-42") == expected
    assert redact.digest(b"user-42") == expected


def test_digest_is_not_a_plain_hash() -> None:
    assert redact.digest("user-42") != hashlib.sha256(b"user-42").hexdigest()


def test_digest_is_stable_and_distinguishes_values() -> None:
    first = redact.digest("state-value")
    assert first == redact.digest("state-value")
    assert first != redact.digest("state-value2")
    assert first is not None
    assert len(first) == 64
    assert int(first, 16) >= 0
    assert "state-value" not in first


def test_empty_value_has_a_digest() -> None:
    assert redact.digest("") == hmac.new(redact.get_digest_key(), b"", hashlib.sha256).hexdigest()


def test_non_ascii_value_digested_as_utf8() -> None:
    assert redact.digest("ünï") == redact.digest("ünï".encode())


def test_same_key_correlates_across_processes() -> None:
    redact.set_digest_key(KEY)
    here = redact.digest("subject")
    redact.set_digest_key(KEY.encode())
    assert redact.digest("subject") == here


def test_other_key_gives_other_digest() -> None:
    redact.set_digest_key(KEY)
    first = redact.digest("subject")
    redact.set_digest_key("another-key-" + "o" * 32)
    assert redact.digest("subject") != first


def test_none_draws_a_new_random_key() -> None:
    redact.set_digest_key(KEY)
    redact.set_digest_key(None)
    key = redact.get_digest_key()
    assert key != KEY.encode()
    assert len(key) == 32
    redact.set_digest_key(None)
    assert redact.get_digest_key() != key


@pytest.mark.parametrize("key", ["k" * 32, b"\x00" * 32, "€" * 11])
def test_minimum_length_accepted(key: str | bytes) -> None:
    redact.set_digest_key(key)
    expected = key.encode() if isinstance(key, str) else key
    assert redact.get_digest_key() == expected


@pytest.mark.parametrize("key", ["", "k" * 31, b"k" * 31, "€" * 10])
def test_short_key_refused_and_key_unchanged(key: str | bytes) -> None:
    redact.set_digest_key(KEY)
    with pytest.raises(ConfigError) as caught:
        redact.set_digest_key(key)
    assert "32 bytes" in caught.value.message
    if key:
        assert str(key) not in caught.value.message
    assert redact.get_digest_key() == KEY.encode()
