"""Authenticated encryption of small JSON payloads (state, one-time values, sessions).

AES-256-GCM (NIST SP 800-38D) from ``cryptography``.  Each purpose derives its
own key from the application's secret with HKDF-SHA256 (RFC 5869), and the
purpose is also bound as associated data, so a blob sealed for one use (say, a
session) is useless as another (say, a login state).

Wire form: ``base64url(version || nonce[12] || ciphertext || tag[16])``.  Size
limits are checked before any decoding; every failure raises
:class:`StateError` with a reason code.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StateError

__all__ = ["MAX_SEALED_CHARS", "Sealer", "normalize_secret"]

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
MAX_SEALED_CHARS = 8192
"""Largest sealed token accepted for decoding."""


_GENERATE = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
_MIN_DISTINCT_BYTES = 12
_PLACEHOLDERS = (
    b"secret material",
    b"change me",
    b"change-me",
    b"changeme",
    b"your secret",
    b"your-secret",
)


def normalize_secret(secret: str | bytes, *, what: str = "state_key") -> bytes:
    """Return the secret as bytes, refusing one that is short or plainly not secret.

    Refused: fewer than 32 bytes; fewer than 12 distinct bytes (``"x" * 32``,
    a repeated word); text that reads as a placeholder ("... secret material
    ...", "change me").  A key from :func:`secrets.token_urlsafe` passes.
    """
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < 32:
        raise ConfigError(f"{what} must be at least 32 bytes of secret material; {_GENERATE}.")
    if len(set(raw)) < _MIN_DISTINCT_BYTES:
        raise ConfigError(
            f"{what} repeats too few characters to be secret ({len(set(raw))} distinct); "
            f"{_GENERATE}."
        )
    lowered = raw.lower()
    if any(phrase in lowered for phrase in _PLACEHOLDERS):
        raise ConfigError(f"{what} reads as a placeholder, not a secret; {_GENERATE}.")
    return raw


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Sealer:
    """Seal and unseal JSON objects for one purpose under one secret.

    :param secret: At least 32 bytes of secret material.
    :param purpose: A label such as ``"state"``; distinct labels give unrelated keys.
    :param context: What the sealed values belong to (say, an issuer and a client
        id): the salt of the key derivation and associated data, so a value
        sealed under another context fails to unseal, even under the same
        secret and purpose.
    """

    def __init__(self, secret: str | bytes, purpose: str, *, context: str = "") -> None:
        ikm = normalize_secret(secret)
        label = f"dash_oauth_otel/{purpose}/v{_VERSION}".encode()
        # The context also salts the key (RFC 5869 §3.1): each app its own keys.
        salt = context.encode() if context else None
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=label).derive(ikm)
        self._label = label.decode()
        self._aad = label + (b"\0" + context.encode() if context else b"")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"Sealer(purpose={self._label!r})"

    def seal(self, payload: dict[str, Any]) -> str:
        """Encrypt ``payload`` (a JSON-serialisable dict) into a URL-safe token."""
        plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, self._aad)
        return _b64encode(bytes([_VERSION]) + nonce + sealed)

    def unseal(self, token: object, *, max_chars: int = MAX_SEALED_CHARS) -> dict[str, Any]:
        """Decrypt and parse a token made by :meth:`seal`.

        :raises StateError: With ``reason`` one of ``token_not_string``,
            ``token_empty``, ``token_too_large``, ``token_b64_invalid``,
            ``token_too_short``, ``token_version_mismatch``, ``gcm_auth_failed``,
            ``payload_json_invalid``.
        """
        if not isinstance(token, str):
            raise StateError("The sealed value is not a string.", reason="token_not_string")
        if not token:
            raise StateError("The sealed value is empty.", reason="token_empty")
        if len(token) > max_chars:
            raise StateError("The sealed value is too large.", reason="token_too_large")
        if not _B64URL.fullmatch(token):
            raise StateError("The sealed value is not base64url.", reason="token_b64_invalid")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise StateError(
                "The sealed value is not base64url.", reason="token_b64_invalid"
            ) from None
        if len(raw) < 1 + _NONCE_BYTES + _TAG_BYTES + 2:
            raise StateError("The sealed value is too short.", reason="token_too_short")
        if raw[0] != _VERSION:
            raise StateError(
                "The sealed value has an unknown version.", reason="token_version_mismatch"
            )
        nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            plaintext = self._aead.decrypt(nonce, sealed, self._aad)
        except InvalidTag:
            raise StateError(
                "The sealed value failed authentication (tampered, or sealed under another key).",
                reason="gcm_auth_failed",
            ) from None
        try:
            return parse_json_object(plaintext)
        except (ValueError, UnicodeDecodeError):
            raise StateError(
                "The sealed payload is not a JSON object.", reason="payload_json_invalid"
            ) from None
