"""The provider's JSON Web Key Set: strict parsing and a rate-limited cache.

:func:`parse_jwks` turns the JSON document published at the provider's
``jwks_uri`` (OpenID Connect Discovery 1.0 §3, RFC 7517 §5) into a
:class:`JWKSet` of public signature-verification keys, refusing documents that
are oversized, carry private or symmetric key material, or use weak RSA keys.

:class:`JWKSCache` holds the parsed set for a while and picks the key for an ID
token's ``kid``/``alg``.  It refetches on an unknown ``kid`` (key rotation,
OpenID Connect Core 1.0 §10.1.1) at most once per ``refetch_interval`` so that
tokens with random ``kid`` values cannot make the application hammer the
provider.

Nothing here does I/O: the cache calls an injected ``fetch`` callable that
returns the decoded JSON document.  Keys are imported with :mod:`joserfc`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey
from joserfc.util import urlsafe_b64decode

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import JWKSError

__all__ = [
    "MAX_KEYS",
    "MAX_KID_LENGTH",
    "MIN_RSA_BITS",
    "SUPPORTED_ALGS",
    "JWKSCache",
    "JWKSet",
    "VerificationKey",
    "parse_jwks",
]

VerificationKey = RSAKey | ECKey | OKPKey
"""A public key usable to verify a JWS signature (never a symmetric key)."""

MAX_KEYS: Final = 100
"""Most entries accepted in a JWKS ``keys`` array."""

MAX_KID_LENGTH: Final = 128
"""Longest ``kid`` accepted, in characters."""

MIN_RSA_BITS: Final = 2048
"""Smallest RSA modulus accepted (NIST SP 800-131A rev. 2)."""

_MAX_RSA_BITS: Final = 16384
"""Largest RSA modulus accepted: bounds the cost of one verification."""

_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
"""Members holding private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4)."""

_SIGNATURE_CURVES: Final = {
    "EC": frozenset({"P-256", "P-384", "P-521"}),
    "OKP": frozenset({"Ed25519", "Ed448"}),
}
"""Curves of the key types that this module imports for signature verification."""

# The key each accepted JWS algorithm needs: the "kty" and, for curve keys, the
# allowed "crv" values (RFC 7518 §3.1, RFC 8037 §3.1, RFC 9864 §2).
_ALG_KEYS: Final[Mapping[str, tuple[str, frozenset[str] | None]]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
    "Ed448": ("OKP", frozenset({"Ed448"})),
}

SUPPORTED_ALGS: Final = frozenset(_ALG_KEYS)
"""The asymmetric JWS algorithms that ID tokens may use.  ``none`` and the
HMAC algorithms (``HS*``) are deliberately absent: a JWKS never holds a
shared secret for us, and accepting them opens algorithm-confusion attacks."""


@dataclass(frozen=True)
class JWKSet:
    """The usable public signature keys of one JWKS document.

    :param keys: The imported keys, in document order.  Each key's ``kid`` is
        the one published (joserfc's thumbprint default is never applied).
    :param ignored: How many entries were skipped (other ``use``, unknown
        ``kty``, ``key_ops`` without ``verify``, curves we never verify with).
    """

    keys: tuple[VerificationKey, ...]
    ignored: int = 0

    def __iter__(self) -> Iterator[VerificationKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, kid: str | None, alg: str) -> list[VerificationKey]:
        """Return the keys that may verify a JWS with this ``kid`` and ``alg``.

        A key fits when its ``kty`` (and ``crv``) match what ``alg`` needs and its
        own ``alg`` member, if any, equals ``alg`` (RFC 7517 §4.4).  With a
        ``kid`` only keys with exactly that ``kid`` fit (RFC 7515 §4.1.4); without
        one every fitting key is returned and the caller decides.
        """
        requirement = _ALG_KEYS.get(alg)
        if requirement is None:
            return []
        kty, curves = requirement
        found: list[VerificationKey] = []
        for key in self.keys:
            if key.key_type != kty:
                continue
            if curves is not None and _curve_of(key) not in curves:
                continue
            if key.alg is not None and key.alg != alg:
                continue
            if kid is not None and key.kid != kid:
                continue
            found.append(key)
        return found


def parse_jwks(document: object) -> JWKSet:
    """Parse a JWKS document into its public signature-verification keys.

    The whole document is refused (:class:`~dash_oauth_otel.errors.JWKSError`)
    when it is not an object (``jwks_not_object``), has no ``keys`` array
    (``jwks_keys_not_array``), more than :data:`MAX_KEYS` entries
    (``jwks_too_many_keys``), an entry that is not an object or has no string
    ``kty`` (``jwks_invalid_key``), any private or symmetric member such as
    ``d`` or ``k`` (``jwks_private_key_member``), a symmetric ``oct`` key
    (``jwks_symmetric_key``), a ``kid`` that is not a string of 1 to
    :data:`MAX_KID_LENGTH` characters (``jwks_invalid_kid``), a signature key
    that joserfc cannot import (``jwks_invalid_key``) or an RSA modulus under
    :data:`MIN_RSA_BITS` bits (``jwks_weak_rsa_key``).  A provider publishing
    such keys is misconfigured or compromised, so nothing from it is trusted.

    Entries whose ``use`` is not ``sig``, whose ``key_ops`` lack ``verify``
    (RFC 7517 §4.2, §4.3), whose ``kty`` is unknown (RFC 7517 §5) or whose curve
    no accepted algorithm uses (X25519, secp256k1, ...) are skipped.  If nothing
    usable remains the error reason is ``jwks_no_usable_keys``.

    :param document: The decoded JSON document.
    :returns: The usable keys.
    :raises JWKSError: When the document is unusable or unsafe.
    """
    if not isinstance(document, Mapping):
        raise JWKSError("The JWKS document is not a JSON object", reason="jwks_not_object")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JWKSError("The JWKS document has no 'keys' array", reason="jwks_keys_not_array")
    if len(entries) > MAX_KEYS:
        raise JWKSError(
            f"The JWKS document has more than {MAX_KEYS} keys", reason="jwks_too_many_keys"
        )

    keys: list[VerificationKey] = []
    ignored = 0
    for index, entry in enumerate(entries):
        key = _parse_entry(index, entry)
        if key is None:
            ignored += 1
        else:
            keys.append(key)
    if not keys:
        raise JWKSError(
            "The JWKS document has no usable signature key", reason="jwks_no_usable_keys"
        )
    return JWKSet(keys=tuple(keys), ignored=ignored)


def _parse_entry(index: int, entry: object) -> VerificationKey | None:
    """Validate one JWK (RFC 7517 §4); return its key, or ``None`` to skip it."""
    if not isinstance(entry, Mapping):
        raise JWKSError(f"JWKS key #{index} is not a JSON object", reason="jwks_invalid_key")
    kty = entry.get("kty")
    if not isinstance(kty, str):
        raise JWKSError(f"JWKS key #{index} has no string 'kty'", reason="jwks_invalid_key")
    # Checked on every entry, used or not: publishing private material at all
    # means the provider's key management cannot be trusted.
    leaked = sorted(_PRIVATE_MEMBERS.intersection(entry))
    if leaked:
        raise JWKSError(
            f"JWKS key #{index} carries private key members {leaked}",
            reason="jwks_private_key_member",
        )
    if kty == "oct":
        raise JWKSError(
            f"JWKS key #{index} is a symmetric 'oct' key; a JWKS must hold public keys only",
            reason="jwks_symmetric_key",
        )
    kid = entry.get("kid")
    if "kid" in entry and not (isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH):
        raise JWKSError(
            f"JWKS key #{index} has a 'kid' that is not a string of 1 to "
            f"{MAX_KID_LENGTH} characters",
            reason="jwks_invalid_kid",
        )

    # RFC 7517 §4.2/§4.3: keep only keys meant for verifying signatures.
    if "use" in entry and entry["use"] != "sig":
        return None
    key_ops = entry.get("key_ops")
    if "key_ops" in entry and not (isinstance(key_ops, list) and "verify" in key_ops):
        return None
    if kty not in ("RSA", "EC", "OKP"):
        return None  # RFC 7517 §5: ignore key types that are not understood
    crv = entry.get("crv")
    if kty in _SIGNATURE_CURVES and crv not in _SIGNATURE_CURVES[kty]:
        # Key-agreement curves (X25519, X448: RFC 8037 §3.2) and curves for
        # algorithms we never accept (secp256k1) cannot verify an ID token.
        return None
    alg = entry.get("alg")
    if "alg" in entry and not isinstance(alg, str):
        raise JWKSError(f"JWKS key #{index} has a non-string 'alg'", reason="jwks_invalid_key")

    # Import only the public members we need, so that unrelated members (x5c,
    # key_ops with private operations, extensions) cannot upset the import.
    public = {
        name: entry[name]
        for name in ("kty", "kid", "alg", "crv", "n", "e", "x", "y")
        if name in entry
    }
    public["use"] = "sig"
    if kty == "RSA":
        _check_rsa_modulus(index, entry.get("n"))
    try:
        key: VerificationKey
        if kty == "RSA":
            key = RSAKey.import_key(public)
        elif kty == "EC":
            key = ECKey.import_key(public)
        else:
            key = OKPKey.import_key(public)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise JWKSError(
            f"JWKS key #{index} ({kty}) cannot be imported", reason="jwks_invalid_key"
        ) from exc
    if key.is_private:  # pragma: no cover - private members were refused above
        raise JWKSError(f"JWKS key #{index} is private", reason="jwks_private_key_member")
    return key


def _check_rsa_modulus(index: int, n: object) -> None:
    """Refuse an RSA modulus outside [:data:`MIN_RSA_BITS`, 16384] bits (RFC 7518 §6.3.1.1).

    Checked before import so that joserfc's weak-key warning never fires.
    """
    if not isinstance(n, str):
        raise JWKSError(f"JWKS key #{index} has no RSA modulus 'n'", reason="jwks_invalid_key")
    try:
        bits = int.from_bytes(urlsafe_b64decode(n.encode("ascii")), "big").bit_length()
    except (ValueError, UnicodeEncodeError) as exc:
        raise JWKSError(
            f"JWKS key #{index} has a malformed RSA modulus", reason="jwks_invalid_key"
        ) from exc
    if bits < MIN_RSA_BITS:
        raise JWKSError(
            f"JWKS key #{index} is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits required",
            reason="jwks_weak_rsa_key",
        )
    if bits > _MAX_RSA_BITS:
        raise JWKSError(
            f"JWKS key #{index} has an RSA modulus over {_MAX_RSA_BITS} bits",
            reason="jwks_invalid_key",
        )


def _curve_of(key: VerificationKey) -> str | None:
    """Return the JWK ``crv`` name of a curve key, ``None`` for RSA."""
    if isinstance(key, (ECKey, OKPKey)):
        return str(key.curve_name)
    return None


class JWKSCache:
    """A thread-safe cache of the provider's key set with rate-limited refetch.

    The key set is fetched when first needed and again once it is ``ttl``
    seconds old.  When a token names a ``kid`` the cached set lacks (the provider
    rotated its keys, OpenID Connect Core 1.0 §10.1.1), :meth:`key_for` refetches
    once, but at most once per ``refetch_interval`` seconds: random ``kid``
    values must not turn the application into a load generator against the
    provider.  A set fetched during the same call is not fetched again.

    Errors raised by ``fetch`` (transport, HTTP status) and by :func:`parse_jwks`
    propagate unchanged; the previously cached set is kept.

    :param fetch: Returns the decoded JWKS document; performs the I/O.
    :param ttl: Seconds a fetched key set is used before it is fetched again.
    :param refetch_interval: Least seconds between two refetches triggered by
        unknown ``kid`` values.
    :param clock: Returns the current time in seconds.
    :raises ConfigError: When ``ttl`` is not positive or ``refetch_interval``
        is negative.
    """

    def __init__(
        self,
        fetch: Callable[[], object],
        *,
        ttl: float = 3600,
        refetch_interval: float = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0 or refetch_interval < 0:
            raise ConfigError("JWKSCache needs ttl > 0 and refetch_interval >= 0")
        self._fetch = fetch
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._key_set: JWKSet | None = None
        self._fetched_at = 0.0
        self._last_forced: float | None = None

    def keys(self) -> JWKSet:
        """Return the cached key set, fetching it when absent or older than ``ttl``."""
        with self._lock:
            return self._current()

    def key_for(self, kid: str | None, alg: str) -> VerificationKey:
        """Return the key to verify a JWS whose header has this ``kid`` and ``alg``.

        The ``kid`` must match exactly.  Without a ``kid`` the token is accepted
        only when exactly one cached key fits ``alg``.

        :raises IDTokenError: ``alg_not_allowed`` for an algorithm this module
            does not support, ``unknown_kid`` when no key fits even after the
            permitted refetch, ``kid_ambiguous`` when several keys fit.
        :raises JWKSError: When a (re)fetched document is unusable.
        """
        if alg not in _ALG_KEYS:
            raise IDTokenError(
                "The ID token's signing algorithm is not allowed", reason="alg_not_allowed"
            )
        with self._lock:
            fetched_before = self._fetched_at
            key = self._select(self._current(), kid, alg)
            just_fetched = self._fetched_at != fetched_before
            if key is None and not just_fetched and self._refetch_allowed():
                self._last_forced = self._clock()
                key = self._select(self._refresh(), kid, alg)
        if key is None:
            raise IDTokenError(
                "No key in the provider's JWKS matches the ID token's 'kid' and 'alg'",
                reason="unknown_kid",
            )
        return key

    # -- internals; callers hold self._lock --------------------------------

    def _current(self) -> JWKSet:
        age = self._clock() - self._fetched_at
        if self._key_set is None or age >= self._ttl or age < 0:
            return self._refresh()
        return self._key_set

    def _refetch_allowed(self) -> bool:
        if self._last_forced is None:
            return True
        since = self._clock() - self._last_forced
        return since >= self._refetch_interval or since < 0

    def _refresh(self) -> JWKSet:
        key_set = parse_jwks(self._fetch())
        self._key_set = key_set
        self._fetched_at = self._clock()
        return key_set

    @staticmethod
    def _select(key_set: JWKSet, kid: str | None, alg: str) -> VerificationKey | None:
        found = key_set.candidates(kid, alg)
        if len(found) > 1:
            raise IDTokenError(
                "Several keys in the provider's JWKS fit the ID token's 'kid' and 'alg'",
                reason="kid_ambiguous",
            )
        return found[0] if found else None
