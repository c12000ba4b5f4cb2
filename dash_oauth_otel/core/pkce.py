"""Proof Key for Code Exchange (PKCE), S256 only.

RFC 7636 — https://www.rfc-editor.org/rfc/rfc7636
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from dash_oauth_otel.errors import PKCEError

__all__ = ["S256", "create_code_verifier", "s256_challenge", "validate_code_verifier"]

S256 = "S256"

# RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def create_code_verifier() -> str:
    """Return a fresh verifier: 64 URL-safe characters from 48 random bytes (§4.1)."""
    return secrets.token_urlsafe(48)


def s256_challenge(verifier: str) -> str:
    """Return ``BASE64URL(SHA256(ASCII(verifier)))`` without padding (§4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def validate_code_verifier(verifier: object, *, phase: str | None = None) -> str:
    """Return ``verifier`` if it has the §4.1 form, else raise :class:`PKCEError`."""
    if not isinstance(verifier, str) or not _VERIFIER.fullmatch(verifier):
        raise PKCEError(
            "The PKCE code verifier is missing or malformed.",
            phase=phase,
            reason="verifier_invalid",
        )
    return verifier
