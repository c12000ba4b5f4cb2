"""Sealed login state and the one-time values behind it.

RFC 6749 §10.12 (CSRF), RFC 9700 §4.7, OpenID Connect Core §3.1.2.1 (nonce).

The ``state`` sent to the provider is a sealed payload (AES-256-GCM, see
:mod:`.sealing`) binding the random state to the client id, redirect URI,
scopes, provider and client-policy fingerprints, the issue time and the
correlation id.  The values that must be used once — PKCE verifier, nonce and
the browser-binding digest — live in the state store under a hash of the random
state, sealed as well, and are taken atomically at the callback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import StoreError

__all__ = [
    "OneTimeValues",
    "StatePayload",
    "browser_digest",
    "check_browser_token",
    "open_state",
    "peek_one_time",
    "same_browser",
    "seal_state",
    "state_store_key",
    "store_one_time",
    "take_one_time",
    "verify_binding",
]

_BROWSER_TOKEN_MIN = 32
_BROWSER_TOKEN_MAX = 256
_BROWSER_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class StatePayload:
    """The content of a sealed state."""

    state: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    provider: str
    client_policy: str
    issued_at: float
    trace_id: str
    max_age: int | None = None
    otel: Mapping[str, str] | None = None
    app: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form sealed into the state parameter."""
        return {
            "s": self.state,
            "cid": self.client_id,
            "ru": self.redirect_uri,
            "sc": list(self.scopes),
            "pf": self.provider,
            "cf": self.client_policy,
            "iat": self.issued_at,
            "tid": self.trace_id,
            "ma": self.max_age,
            "ot": dict(self.otel or {}),
            "app": dict(self.app or {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatePayload:
        """Parse the sealed JSON form, checking every member's type."""
        try:
            state, cid, ru, pf, cf, tid = (
                data["s"],
                data["cid"],
                data["ru"],
                data["pf"],
                data["cf"],
                data["tid"],
            )
            scopes, iat, ma = data["sc"], data["iat"], data.get("ma")
            otel, app = data.get("ot", {}), data.get("app", {})
        except KeyError:
            raise StateError("The state payload is incomplete.", reason="payload_shape") from None
        strings = (state, cid, ru, pf, cf, tid)
        if (
            not all(isinstance(v, str) for v in strings)
            or not isinstance(scopes, list)
            or not all(isinstance(v, str) for v in scopes)
            or not isinstance(iat, (int, float))
            or isinstance(iat, bool)
            or not (ma is None or (isinstance(ma, int) and not isinstance(ma, bool)))
            or not _str_map(otel)
            or not _str_map(app)
        ):
            raise StateError("The state payload is malformed.", reason="payload_shape")
        try:
            issued_at = float(iat)
        except OverflowError:
            raise StateError("The state payload is malformed.", reason="payload_shape") from None
        return cls(state, cid, ru, tuple(scopes), pf, cf, issued_at, tid, ma, otel, app)


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


@dataclass(frozen=True)
class OneTimeValues:
    """What the callback needs exactly once: PKCE verifier, nonce, browser binding."""

    code_verifier: str
    nonce: str | None
    browser_digest: str


def browser_digest(browser_token: str) -> str:
    """The digest of the browser-binding token kept with the state."""
    return hashlib.sha256(b"dash_oauth_otel/browser\0" + browser_token.encode()).hexdigest()


def check_browser_token(browser_token: object) -> str:
    """Return ``browser_token`` if it is a well-formed binding token, else raise.

    :raises InputError: When missing, too short or long, or not URL-safe.
    """
    if (
        not isinstance(browser_token, str)
        or not _BROWSER_TOKEN_MIN <= len(browser_token) <= _BROWSER_TOKEN_MAX
        or not set(browser_token) <= _BROWSER_ALPHABET
    ):
        raise InputError(
            "The browser-binding token is missing or malformed.",
            phase="callback.browser_token_validation",
            reason="browser_token_invalid",
        )
    return browser_token


def state_store_key(state: str) -> str:
    """The store key of a state's one-time values: a hash, never the state itself."""
    return "state:" + hashlib.sha256(state.encode()).hexdigest()


def seal_state(
    client: OAuthClient,
    *,
    trace_id: str,
    max_age: int | None,
    otel: Mapping[str, str] | None,
    app: Mapping[str, str] | None,
    now: float | None = None,
) -> tuple[str, StatePayload]:
    """Mint a random state and seal its payload; return ``(sealed, payload)``."""
    payload = StatePayload(
        state=secrets.token_urlsafe(32),
        client_id=client.client_id,
        redirect_uri=client.redirect_uri,
        scopes=client.scopes,
        provider=client.provider.fingerprint(),
        client_policy=client.policy_fingerprint(),
        issued_at=client.clock() if now is None else now,
        trace_id=trace_id,
        max_age=max_age,
        otel=otel,
        app=app,
    )
    return client.state_sealer.seal(payload.to_json()), payload


def open_state(client: OAuthClient, sealed: object) -> StatePayload:
    """Unseal a state parameter (no binding checks yet; see :func:`verify_binding`).

    :raises StateError: With the sealing layer's reason code.
    """
    return StatePayload.from_json(client.state_sealer.unseal(sealed))


def verify_binding(client: OAuthClient, payload: StatePayload, *, now: float | None = None) -> None:
    """Check that ``payload`` was minted by this client, unchanged, and is fresh.

    :raises StateError: ``client_mismatch``, ``redirect_uri_mismatch``,
        ``scope_mismatch``, ``provider_mismatch``, ``client_policy_mismatch``,
        ``issued_in_future`` or ``expired``.
    """
    now = client.clock() if now is None else now
    checks = (
        (payload.client_id == client.client_id, "client_mismatch", "another client"),
        (
            payload.redirect_uri == client.redirect_uri,
            "redirect_uri_mismatch",
            "another redirect URI",
        ),
        (set(payload.scopes) == set(client.scopes), "scope_mismatch", "other scopes"),
        (
            payload.provider == client.provider.fingerprint(),
            "provider_mismatch",
            "another provider configuration",
        ),
        (
            payload.client_policy == client.policy_fingerprint(),
            "client_policy_mismatch",
            "another client policy",
        ),
    )
    for ok, reason, what in checks:
        if not ok:
            raise StateError(
                f"The state was issued for {what}.", phase="callback.state_payload", reason=reason
            )
    leeway = client.provider.leeway
    if payload.issued_at > now + leeway:
        raise StateError(
            "The state was issued in the future.",
            phase="callback.state_payload",
            reason="issued_in_future",
        )
    if now - payload.issued_at > client.state_ttl:
        raise StateError(
            "The login took too long: the state has expired. Please sign in again.",
            phase="callback.state_payload",
            reason="expired",
        )


def _store(client: OAuthClient) -> Any:
    if client.state_store is None:
        raise ConfigError(
            "OAuthClient.state_store is not set: pass a store (e.g. "
            "dash_oauth_otel.DiskcacheStore()) or let the Dash module supply its own."
        )
    return client.state_store


def store_one_time(client: OAuthClient, payload: StatePayload, values: OneTimeValues) -> None:
    """Keep the one-time values for ``state_ttl`` seconds."""
    sealed = client.store_sealer.seal(
        {"v": values.code_verifier, "n": values.nonce, "b": values.browser_digest}
    )
    try:
        _store(client).set(state_store_key(payload.state), sealed.encode(), client.state_ttl)
    except StoreError:
        raise
    except ConfigError:
        raise
    except Exception as exc:
        raise StoreError(
            f"The state store failed to save the login ({type(exc).__name__}).",
            phase="login.request",
        ) from exc


def _decode(client: OAuthClient, raw: bytes | None, phase: str) -> OneTimeValues | None:
    if raw is None:
        return None
    data = client.store_sealer.unseal(raw.decode("ascii", "replace"))
    verifier, nonce, bdigest = data.get("v"), data.get("n"), data.get("b")
    if (
        not isinstance(verifier, str)
        or not isinstance(bdigest, str)
        or not (nonce is None or isinstance(nonce, str))
    ):
        raise StateError(
            "The stored login values are malformed.", phase=phase, reason="store_shape"
        )
    return OneTimeValues(verifier, nonce, bdigest)


def peek_one_time(client: OAuthClient, payload: StatePayload) -> OneTimeValues | None:
    """Read the one-time values without consuming them (before the binding check)."""
    phase = "callback.state_store_lookup"
    try:
        raw = _store(client).get(state_store_key(payload.state))
    except (StoreError, ConfigError):
        raise
    except Exception as exc:
        raise StoreError("The state store failed.", phase=phase) from exc
    return _decode(client, raw, phase)


def take_one_time(client: OAuthClient, payload: StatePayload) -> OneTimeValues | None:
    """Atomically take the one-time values; ``None`` if already taken or expired."""
    phase = "callback.state_store_consume"
    try:
        raw = _store(client).take(state_store_key(payload.state))
    except (StoreError, ConfigError):
        raise
    except Exception as exc:
        raise StoreError("The state store failed.", phase=phase) from exc
    return _decode(client, raw, phase)


def same_browser(expected_digest: str, browser_token: str) -> bool:
    """Constant-time comparison of the stored binding digest with the presented token."""
    return hmac.compare_digest(expected_digest, browser_digest(browser_token))
