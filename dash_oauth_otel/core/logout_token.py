"""Logout token validation (OpenID Connect Back-Channel Logout 1.0).

https://openid.net/specs/openid-connect-backchannel-1_0.html

A provider that ends a user's session POSTs a ``logout_token`` to the relying
party's ``backchannel_logout_uri`` (§2.5).  :func:`check_logout_token` validates
it as §2.6 asks, with the machinery of ID tokens (:mod:`.id_token`, keys from
the provider's JWKS through :class:`~dash_oauth_otel.core.jwks.JWKSCache`, which
refetches once on an unknown ``kid``; signatures verified by joserfc):

1. the header: an allowlisted asymmetric ``alg`` (``none`` and HMAC never, the
   same allowlist as ID tokens) and, when a ``typ`` is set, ``logout+jwt``
   (§2.4 recommends explicit typing; any other explicit type is refused, so an
   ID token or an access token can never pass for a logout token);
2. the signature (§2.6 step 3, OIDC Core §3.1.3.7 steps 6-8);
3. ``iss``, ``aud``, ``iat`` and, when present, ``exp`` (step 4);
4. the ``events`` claim with the back-channel logout member (step 5);
5. a ``sid`` and/or a ``sub`` (step 6);
6. no ``nonce`` (step 7, it tells a logout token from an ID token).

Replay (step 8, "MAY"): :func:`remember_jti` records each ``jti`` in the store
for as long as the token could be accepted; a second use is refused.

Failures raise :class:`~dash_oauth_otel.errors.LogoutTokenError` with a
``reason`` code; messages never contain the token or its claim values.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Final

from dash_oauth_otel._types import Clock
from dash_oauth_otel._types import Store
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.id_token import MAX_ID_TOKEN_LENGTH
from dash_oauth_otel.core.id_token import check_policy

# The strict JWS parsing and joserfc verification shared with ID tokens.
from dash_oauth_otel.core.id_token import decode_segment
from dash_oauth_otel.core.id_token import is_numeric
from dash_oauth_otel.core.id_token import json_object
from dash_oauth_otel.core.id_token import split_compact
from dash_oauth_otel.core.id_token import verify_signature
from dash_oauth_otel.core.jwks import MAX_KID_LENGTH
from dash_oauth_otel.core.jwks import JWKSCache
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import LogoutTokenError

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LOGOUT_TOKEN_TYPES",
    "MAX_LOGOUT_TOKEN_AGE",
    "MAX_LOGOUT_TOKEN_LENGTH",
    "LogoutClaims",
    "check_logout_token",
    "remember_jti",
    "validate_logout_token",
]

BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
"""The member of the ``events`` claim that makes a JWT a logout token (§2.4)."""

LOGOUT_TOKEN_TYPES: Final = frozenset({"logout+jwt", "application/logout+jwt"})
"""Accepted explicit ``typ`` values (§2.4, RFC 7515 §4.1.9: case-insensitive)."""

MAX_LOGOUT_TOKEN_LENGTH: Final = MAX_ID_TOKEN_LENGTH
"""Longest logout token accepted, in characters."""

MAX_LOGOUT_TOKEN_AGE: Final = 600.0
"""Oldest ``iat`` accepted, in seconds (plus the leeway).  The spec leaves the
bound to the relying party; a bound is what lets :func:`remember_jti` forget a
``jti`` without reopening it to replay."""

_MAX_CLAIM_LENGTH: Final = 255  # sid, sub (OIDC Core §2) and jti
_JTI_PREFIX: Final = "logout-jti:"

# Reasons of the shared JWS helpers (which speak of ID tokens), renamed.
_JWS_REASONS: Final[Mapping[str, str]] = {
    "signature_invalid": "bad_signature",
    "header_invalid": "header_invalid",
    "alg_not_allowed": "alg_not_allowed",
    "unknown_kid": "unknown_kid",
    "kid_ambiguous": "unknown_kid",
}
_MESSAGES: Final[Mapping[str, str]] = {
    "malformed": "The logout token is not a well-formed compact JWS",
    "header_invalid": "The logout token header is invalid",
    "alg_not_allowed": "The logout token's signing algorithm is not allowed",
    "unknown_kid": "No key in the provider's JWKS fits the logout token",
    "bad_signature": "The logout token signature is invalid",
}


@dataclass(frozen=True)
class LogoutClaims:
    """What a valid logout token says.

    :param sid: The provider's session id, if the token names one.
    :param sub: The subject, if the token names one (at least one is set).
    :param jti: The token's unique identifier.
    :param iat: When it was issued (seconds since the epoch).
    :param exp: When it expires, if it says.
    :param valid_until: Until when the token would be accepted (its ``jti``
        must be remembered until then).
    """

    sid: str | None
    sub: str | None
    jti: str
    iat: float
    exp: float | None
    valid_until: float

    def __repr__(self) -> str:
        return f"LogoutClaims(sid={'…' if self.sid else None}, sub={'…' if self.sub else None})"


def _fail(reason: str, message: str) -> LogoutTokenError:
    return LogoutTokenError(message, reason=reason, phase="backchannel_logout")


def _check_header(header: Mapping[str, Any], allowed: Collection[str]) -> tuple[str | None, str]:
    """Apply the header rules (§2.4, RFC 7515 §4.1, RFC 8725 §3.1, §3.11)."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _fail("header_invalid", "The logout token header has no string 'alg'")
    if alg not in allowed:  # `none` and HS* are never in the allowlist
        raise _fail("alg_not_allowed", _MESSAGES["alg_not_allowed"])
    if "typ" in header:
        typ = header["typ"]
        if not isinstance(typ, str) or typ.lower() not in LOGOUT_TOKEN_TYPES:
            raise _fail("wrong_typ", "The logout token header 'typ' is not logout+jwt")
    if "crit" in header or "b64" in header:
        raise _fail("header_invalid", "The logout token header uses an unsupported extension")
    kid = header.get("kid")
    if "kid" in header and not (isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH):
        raise _fail("header_invalid", "The logout token header has an invalid 'kid'")
    return kid, alg


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_CLAIM_LENGTH:
        raise _fail(
            "malformed", f"The logout token '{name}' is not a string of 1 to 255 characters"
        )
    return value


def check_logout_token(
    logout_token: object,
    *,
    keys: JWKSCache,
    issuer: str,
    client_id: str,
    allowed_algs: Sequence[str],
    now: float,
    leeway: float = 30,
    max_age: float = MAX_LOGOUT_TOKEN_AGE,
) -> LogoutClaims:
    """Validate a logout token as Back-Channel Logout 1.0 §2.6 requires.

    :param logout_token: The ``logout_token`` form parameter.
    :param keys: The provider's key set; picks the key by ``kid`` and ``alg``.
    :param issuer: The provider's issuer: ``iss`` must equal it.
    :param client_id: This client: ``aud`` must contain it.
    :param allowed_algs: The ID-token algorithm allowlist (asymmetric only).
    :param now: The current time, seconds since the epoch.
    :param leeway: Seconds of clock skew tolerated on ``iat`` and ``exp``.
    :param max_age: Oldest ``iat`` accepted, in seconds.
    :returns: The token's ``sid``, ``sub``, ``jti`` and times.
    :raises LogoutTokenError: On any defect; :attr:`reason` says which.
    :raises JWKSError: When the key set had to be fetched and is unusable.
    :raises ConfigError: When the arguments cannot work.
    """
    allowed = check_policy(allowed_algs, issuer, client_id, leeway, False)
    if max_age <= 0:
        raise ConfigError("max_age must be positive")
    try:
        header_segment, _, _ = split_compact(logout_token)
        header = decode_segment(header_segment, part="header", reason="header_invalid")
        kid, alg = _check_header(header, allowed)
        assert isinstance(logout_token, str)  # noqa: S101 - split_compact checked it
        # §2.6 step 3: the signature, with the key the provider publishes.
        key = keys.key_for(kid, alg)
        payload = verify_signature(logout_token, key, alg)
        claims = json_object(payload, part="payload", reason="malformed")
    except IDTokenError as exc:
        reason = _JWS_REASONS.get(exc.reason or "", "malformed")
        raise _fail(reason, _MESSAGES[reason]) from None

    # Step 4: iss, aud, iat and exp as for an ID token (OIDC Core §3.1.3.7).
    if claims.get("iss") != issuer:
        raise _fail("wrong_issuer", f"The logout token was not issued by {issuer}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise _fail("wrong_audience", f"The logout token's audience does not contain {client_id}")
    if not is_numeric(claims.get("iat")):
        raise _fail("missing_iat", "The logout token has no numeric 'iat' claim")
    iat = float(claims["iat"])
    if iat > now + leeway:
        raise _fail("iat_in_future", "The logout token was issued in the future")
    if iat < now - max_age - leeway:
        raise _fail("too_old", f"The logout token was issued more than {max_age:g} seconds ago")
    exp: float | None = None
    if "exp" in claims:
        if not is_numeric(claims["exp"]):
            raise _fail("malformed", "The logout token 'exp' is not a number")
        exp = float(claims["exp"])
        if exp <= now - leeway:
            raise _fail("expired", "The logout token has expired")

    # Step 5: the events claim names the back-channel logout event (§2.4).
    events = claims.get("events")
    if not isinstance(events, dict):
        raise _fail("missing_events", "The logout token has no 'events' object")
    if not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise _fail(
            "wrong_event", "The logout token's 'events' lacks the back-channel logout event"
        )

    # Step 6: a session id, a subject, or both.
    sid = _optional_string(claims, "sid")
    sub = _optional_string(claims, "sub")
    if sid is None and sub is None:
        raise _fail("missing_sid_and_sub", "The logout token has neither 'sid' nor 'sub'")

    # Step 7: a nonce is what an ID token carries; a logout token never does.
    if "nonce" in claims:
        raise _fail("nonce_present", "The logout token carries a 'nonce'")

    # §2.4: jti is required (step 8 uses it against replay).
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_CLAIM_LENGTH:
        raise _fail("missing_jti", "The logout token has no 'jti' of 1 to 255 characters")

    window_end = iat + max_age if exp is None else min(exp, iat + max_age)
    return LogoutClaims(
        sid=sid,
        sub=sub,
        jti=jti,
        iat=iat,
        exp=exp,
        valid_until=window_end + leeway,
    )


def validate_logout_token(
    client: OAuthClient,
    logout_token: object,
    *,
    clock: Clock = time.time,
    max_age: float = MAX_LOGOUT_TOKEN_AGE,
) -> LogoutClaims:
    """Validate a logout token sent to ``client`` (see :func:`check_logout_token`).

    The issuer, key set, algorithm allowlist and leeway are the provider's,
    the same as for its ID tokens.

    :raises LogoutTokenError: On any defect.
    :raises ConfigError: When the provider has no issuer or key set.
    """
    provider = client.provider
    if provider.issuer is None:
        raise ConfigError(f"{provider.name} has no issuer; logout tokens cannot be validated.")
    return check_logout_token(
        logout_token,
        keys=provider.jwks,
        issuer=provider.issuer,
        client_id=client.client_id,
        allowed_algs=provider.id_token_algs,
        now=clock(),
        leeway=provider.leeway,
        max_age=max_age,
    )


def _jti_key(issuer: str, client_id: str, jti: str) -> str:
    material = "\0".join((issuer, client_id, jti)).encode("utf-8", "surrogatepass")
    return _JTI_PREFIX + hashlib.sha256(material).hexdigest()


def remember_jti(
    store: Store, claims: LogoutClaims, *, issuer: str, client_id: str, now: float
) -> None:
    """Record ``claims.jti`` as used, atomically across every process (§2.6 step 8).

    The entry lives until the token could no longer be accepted.

    :raises LogoutTokenError: ``replayed_jti`` when the ``jti`` was seen before.
    """
    ttl = max(1.0, math.ceil(claims.valid_until - now))
    if not store.add(_jti_key(issuer, client_id, claims.jti), b"1", ttl):
        raise _fail("replayed_jti", "The logout token was already used")
