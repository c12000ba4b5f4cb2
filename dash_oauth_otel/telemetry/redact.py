"""Keyed digests: how sensitive values appear in audit events and spans.

A value such as a state, a code or a subject is never emitted; its HMAC-SHA256
under the audit digest key is, so events about the same value can be correlated
without revealing it.  The key is the current app's (its ``audit_digest_key``,
see :mod:`dash_oauth_otel.telemetry.settings`), else the process key: random per
process unless set (shared by all workers of a deployment) with
:func:`set_digest_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from dash_oauth_otel.telemetry.settings import current_settings
from dash_oauth_otel.telemetry.settings import normalize_digest_key

__all__ = ["digest", "get_digest_key", "set_digest_key"]

_lock = threading.Lock()
_key: bytes = secrets.token_bytes(32)


def set_digest_key(key: bytes | str | None) -> None:
    """Set the process digest key; ``None`` draws a new random one.

    :param key: At least 32 bytes (or characters) of secret material shared by
        the processes whose events must correlate.
    """
    global _key
    new = secrets.token_bytes(32) if key is None else normalize_digest_key(key)
    with _lock:
        _key = new


def get_digest_key() -> bytes:
    """Return the digest key in effect (for replay into worker processes only)."""
    settings = current_settings()
    if settings is not None and settings.digest_key is not None:
        return settings.digest_key
    return _key


def digest(value: str | bytes | None) -> str | None:
    """Return the hex HMAC-SHA256 of ``value`` under the digest key, or ``None``."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hmac.new(get_digest_key(), data, hashlib.sha256).hexdigest()
