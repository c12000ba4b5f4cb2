"""Keyed digests: how sensitive values appear in audit events and spans.

A value such as a state, a code or a subject is never emitted; its HMAC-SHA256
under the audit digest key is, so events about the same value can be correlated
without revealing it.  The key is random per process unless the application sets
one (shared by all workers of a deployment) with :func:`set_digest_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from dash_oauth_otel.errors import ConfigError

__all__ = ["digest", "get_digest_key", "set_digest_key"]

_lock = threading.Lock()
_key: bytes = secrets.token_bytes(32)


def set_digest_key(key: bytes | str | None) -> None:
    """Set the audit digest key; ``None`` draws a new random per-process key.

    :param key: At least 32 bytes (or characters) of secret material shared by
        the processes whose events must correlate.
    """
    global _key
    if key is None:
        new = secrets.token_bytes(32)
    else:
        new = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if len(new) < 32:
            raise ConfigError(
                "audit_digest_key must be at least 32 bytes; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
    with _lock:
        _key = new


def get_digest_key() -> bytes:
    """Return the current digest key (for replay into worker processes only)."""
    return _key


def digest(value: str | bytes | None) -> str | None:
    """Return the hex HMAC-SHA256 of ``value`` under the digest key, or ``None``."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hmac.new(_key, data, hashlib.sha256).hexdigest()
