"""Tests of dash_oauth_otel.core.pkce: RFC 7636 S256 verifiers and challenges."""

from __future__ import annotations

import re

import pytest

from dash_oauth_otel.core.pkce import S256
from dash_oauth_otel.core.pkce import create_code_verifier
from dash_oauth_otel.core.pkce import s256_challenge
from dash_oauth_otel.core.pkce import validate_code_verifier
from dash_oauth_otel.errors import PKCEError

# RFC 7636 Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_method_name() -> None:
    assert S256 == "S256"


def test_rfc7636_appendix_b_vector() -> None:
    assert s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE


def test_challenge_is_unpadded_base64url_of_sha256() -> None:
    challenge = s256_challenge(create_code_verifier())
    assert len(challenge) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)


def test_created_verifier_has_the_rfc_form() -> None:
    verifier = create_code_verifier()
    assert len(verifier) == 64
    assert validate_code_verifier(verifier) == verifier


def test_created_verifiers_differ() -> None:
    assert len({create_code_verifier() for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "verifier",
    [
        RFC_VERIFIER,
        "a" * 43,
        "Z" * 128,
        "0123456789-._~" * 4,
    ],
)
def test_valid_verifiers(verifier: str) -> None:
    assert validate_code_verifier(verifier) == verifier


@pytest.mark.parametrize(
    "verifier",
    [
        None,
        43,
        b"a" * 43,
        "",
        "a" * 42,
        "a" * 129,
        "a" * 42 + "+",
        "a" * 42 + "/",
        "a" * 42 + "=",
        "a" * 42 + " ",
        "a" * 43 + "\n",
        "a" * 42 + "é",
        "a" * 42 + "٣",  # a non-ASCII digit
    ],
)
def test_invalid_verifiers(verifier: object) -> None:
    with pytest.raises(PKCEError) as caught:
        validate_code_verifier(verifier, phase="callback.code_exchange")
    assert caught.value.reason == "verifier_invalid"
    assert caught.value.phase == "callback.code_exchange"
    assert caught.value.error == "pkce_error"
    if isinstance(verifier, str) and verifier:
        assert verifier not in str(caught.value)
