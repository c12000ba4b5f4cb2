"""ID token validation (OpenID Connect Core 1.0 §2, §3.1.3.7; RFC 7515, RFC 7519).

:func:`validate_id_token` checks the compact-JWS shape and size, a strictly
decoded header, the signature (verified by :mod:`joserfc` with a key from the
provider's JWKS), then the claims.  Failures raise
:class:`~dash_oauth_otel.errors.IDTokenError` with a ``reason`` code, or
:class:`~dash_oauth_otel.errors.NonceError`; messages never contain the token,
the nonce or other claim values.  :func:`check_refresh_continuity` implements
§12.2; :func:`decode_unverified_claims` is for display only.  The compact-JWS
steps (:func:`split_compact`, :func:`decode_segment`, :func:`json_object`,
:func:`verify_signature`, :func:`is_numeric`, :func:`check_policy`) are shared
with :mod:`dash_oauth_otel.core.logout_token`, which maps their
:class:`~dash_oauth_otel.errors.IDTokenError` to its own reasons.

Algorithm policy: ``allowed_algs`` may only name asymmetric algorithms of
:data:`~dash_oauth_otel.core.jwks.SUPPORTED_ALGS`.  Naming ``none``, ``HS256``
or anything else raises :class:`~dash_oauth_otel.errors.ConfigError` at call
time (not silently filtered), so the misconfiguration shows at the first login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Final

from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.errors import DecodeError
from joserfc.errors import ExceededSizeError
from joserfc.errors import InvalidHeaderValueError
from joserfc.errors import JoseError
from joserfc.errors import MissingCritHeaderError
from joserfc.errors import UnsupportedAlgorithmError
from joserfc.errors import UnsupportedHeaderError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from dash_oauth_otel.core.jwks import MAX_KID_LENGTH
from dash_oauth_otel.core.jwks import SUPPORTED_ALGS
from dash_oauth_otel.core.jwks import JWKSCache
from dash_oauth_otel.core.jwks import VerificationKey
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import IDTokenError
from dash_oauth_otel.errors import NonceError

__all__ = [
    "MAX_ID_TOKEN_LENGTH",
    "TENANT_PLACEHOLDER",
    "check_policy",
    "check_refresh_continuity",
    "decode_segment",
    "decode_unverified_claims",
    "is_numeric",
    "json_object",
    "split_compact",
    "validate_id_token",
    "verify_signature",
]

MAX_ID_TOKEN_LENGTH: Final = 16 * 1024
"""Longest ID token accepted, in characters; checked before any decoding."""

TENANT_PLACEHOLDER: Final = "{tenantid}"
"""The placeholder of a tenant-independent issuer template (Microsoft Entra ID)."""

_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*")
_GUID: Final = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)
_SUB: Final = re.compile(r"[\x20-\x7e]{1,255}")  # OIDC Core §2: at most 255 ASCII characters
_JWT_TYPES: Final = frozenset({"jwt", "application/jwt"})  # RFC 7519 §5.1, case-insensitive


class _IDTokenRegistry(JWSRegistry):
    """A joserfc JWS registry bound to the one algorithm the header names.

    ``get_alg`` refuses names outside the explicit allowlist (the base class
    falls back to joserfc's "recommended" set when it is empty) and skips the
    ``SecurityWarning`` joserfc emits for ``EdDSA``, an allowlisted choice here.
    """

    max_header_length = 4096
    max_payload_length = MAX_ID_TOKEN_LENGTH
    max_signature_length = 2048

    def get_alg(self, name: str) -> JWSAlgModel:
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


def _fail(reason: str, message: str) -> IDTokenError:
    return IDTokenError(message, reason=reason)


class _DuplicateMemberError(ValueError):
    """A JSON object repeats a member name (RFC 7515 §5.2 step 4, RFC 7519 §4)."""


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateMemberError
        result[name] = value
    return result


def _refuse_constant(_: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def json_object(data: bytes, *, part: str, reason: str) -> dict[str, Any]:
    """Decode UTF-8 JSON (RFC 8259) that must be an object without duplicate members."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
        )
    except _DuplicateMemberError:
        raise _fail("duplicate_member", f"The ID token {part} repeats a member name") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise IDTokenError(f"The ID token {part} is not valid JSON", reason=reason) from None
    if not isinstance(value, dict):
        raise IDTokenError(f"The ID token {part} is not a JSON object", reason=reason)
    return value


def split_compact(id_token: object) -> tuple[str, str, str]:
    """Split a compact JWS into its three segments (RFC 7515 §7.1)."""
    if not isinstance(id_token, str):
        raise _fail("malformed", "The ID token is not a string")
    if len(id_token) > MAX_ID_TOKEN_LENGTH:
        raise _fail("too_large", f"The ID token exceeds {MAX_ID_TOKEN_LENGTH} characters")
    parts = id_token.split(".")
    if len(parts) == 5:
        raise _fail("jwe_not_supported", "Encrypted (JWE) ID tokens are not supported")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise _fail("malformed", "The ID token is not a compact JWS")
    return parts[0], parts[1], parts[2]


def decode_segment(segment: str, *, part: str, reason: str) -> dict[str, Any]:
    """Decode one base64url segment holding a JSON object (RFC 7515 §7.1)."""
    try:
        data = urlsafe_b64decode(segment.encode("ascii"))
    except ValueError:
        raise IDTokenError(f"The ID token {part} is not base64url", reason=reason) from None
    return json_object(data, part=part, reason=reason)


def _check_header(header: Mapping[str, Any], allowed: Collection[str]) -> tuple[str | None, str]:
    """Apply the header rules (RFC 7515 §4.1, RFC 8725 §3.1, §3.11); return kid and alg."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _fail("header_invalid", "The ID token header has no string 'alg'")
    if alg not in allowed:
        raise _fail("alg_not_allowed", "The ID token's signing algorithm is not allowed")
    if "typ" in header:
        typ = header["typ"]
        if not isinstance(typ, str) or typ.lower() not in _JWT_TYPES:
            raise _fail("typ_invalid", "The ID token header has a wrong 'typ'")
    if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension
        raise _fail("crit_not_supported", "The ID token header has a 'crit' member")
    if "b64" in header:  # RFC 7797 unencoded payloads are not ID tokens
        raise _fail("header_invalid", "The ID token header has a 'b64' member")
    kid = header.get("kid")
    if "kid" in header and not (isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH):
        raise _fail("header_invalid", "The ID token header has an invalid 'kid'")
    return kid, alg


def verify_signature(id_token: str, key: VerificationKey, alg: str) -> bytes:
    """Verify the JWS signature with joserfc; return the signed payload bytes."""
    registry = _IDTokenRegistry(algorithms=[alg], strict_check_header=False)
    try:
        signed = jws.deserialize_compact(id_token, key, registry=registry)
    except BadSignatureError:
        raise _fail("signature_invalid", "The ID token signature is invalid") from None
    except (InvalidHeaderValueError, UnsupportedHeaderError, MissingCritHeaderError):
        raise _fail("header_invalid", "The ID token header is invalid") from None
    except (DecodeError, ExceededSizeError):
        raise _fail("malformed", "The ID token is not a compact JWS") from None
    except (JoseError, ValueError):
        # A key/algorithm mismatch (joserfc's check_key) or an unusable signature.
        raise _fail("signature_invalid", "The ID token signature cannot be verified") from None
    return signed.payload


def is_numeric(value: object) -> bool:
    """Tell whether ``value`` is a finite JSON number (RFC 7519 §2 NumericDate)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _numeric_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> Any:
    if name not in claims:
        if required:
            raise _fail(f"{name}_missing", f"The ID token has no '{name}' claim")
        return None
    value = claims[name]
    if not is_numeric(value):
        raise _fail(f"{name}_invalid", f"The ID token '{name}' is not a number")
    return value


def _utf8(text: str) -> bytes:
    # surrogatepass: JSON may carry lone surrogates; they must compare, not crash.
    return text.encode("utf-8", "surrogatepass")


def _same_secret(received: object, expected: object) -> bool:
    """Compare two strings in constant time; anything but two strings differs."""
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return hmac.compare_digest(_utf8(received), _utf8(expected))


def _token_hash(value: str, alg: str, key: VerificationKey) -> str:
    """Compute ``at_hash``/``c_hash`` (OIDC Core §3.1.3.6, §3.3.2.11).

    The hash is the one of the JWS algorithm; for EdDSA it is SHA-512 with
    Ed25519 and SHAKE256 (114 bytes) with Ed448.  The left half is base64url.
    """
    data = _utf8(value)
    if alg.endswith("384"):
        digest = hashlib.sha384(data).digest()
    elif alg.endswith("512") or alg == "Ed25519":
        digest = hashlib.sha512(data).digest()
    elif alg == "Ed448" or (alg == "EdDSA" and key.get("crv") == "Ed448"):
        digest = hashlib.shake_256(data).digest(114)
    elif alg == "EdDSA":
        digest = hashlib.sha512(data).digest()
    else:
        digest = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def check_policy(
    allowed_algs: Sequence[str],
    issuer: str,
    client_id: str,
    leeway: float,
    tenant_independent: bool,
) -> frozenset[str]:
    """Check the validation policy (algorithms, issuer, client, leeway); return the algorithms.

    :raises ConfigError: The policy names a symmetric or unknown algorithm, an
        empty issuer or client id, a negative leeway, or a tenant placeholder
        that does not match ``tenant_independent``.
    """
    if isinstance(allowed_algs, str) or not allowed_algs:
        raise ConfigError("allowed_algs must be a non-empty sequence of algorithm names")
    refused = sorted(str(alg) for alg in allowed_algs if alg not in SUPPORTED_ALGS)
    if refused:
        raise ConfigError(
            f"allowed_algs may only name asymmetric algorithms {sorted(SUPPORTED_ALGS)}; "
            f"'none' and HMAC algorithms are never accepted; refused: {refused}"
        )
    if not issuer or not client_id:
        raise ConfigError("issuer and client_id must not be empty")
    if (TENANT_PLACEHOLDER in issuer) != tenant_independent:
        raise ConfigError(
            f"The issuer must contain '{TENANT_PLACEHOLDER}' exactly when tenant_independent is set"
        )
    if leeway < 0:
        raise ConfigError("leeway must not be negative")
    return frozenset(allowed_algs)


def validate_id_token(
    id_token: str,
    *,
    keys: JWKSCache,
    issuer: str,
    client_id: str,
    allowed_algs: Sequence[str],
    nonce: str | None,
    now: float,
    leeway: float = 30,
    max_lifetime: float = 86400,
    max_age: int | None = None,
    access_token: str | None = None,
    tenant_independent: bool = False,
) -> dict[str, Any]:
    """Validate an ID token as OpenID Connect Core 1.0 §3.1.3.7 requires.

    :param id_token: The compact-serialized token from the token response.
    :param keys: The provider's key set; picks the key by ``kid`` and ``alg``.
    :param issuer: The expected ``iss``; with ``tenant_independent`` a template
        containing ``{tenantid}``.
    :param client_id: This client's ``client_id``: the only accepted audience.
    :param allowed_algs: Accepted JWS algorithms, a subset of
        :data:`~dash_oauth_otel.core.jwks.SUPPORTED_ALGS`.
    :param nonce: The nonce sent in the authorization request, or ``None``.
    :param now: The current time, seconds since the epoch.
    :param leeway: Seconds of clock skew tolerated on ``exp``, ``iat``,
        ``nbf`` and ``auth_time``.
    :param max_lifetime: Longest accepted ``exp - iat``, in seconds.
    :param max_age: The ``max_age`` sent, if any; then ``auth_time`` is required.
    :param access_token: The access token issued with the ID token; its
        ``at_hash`` is checked when the token carries one.
    :param tenant_independent: Fill ``{tenantid}`` in ``issuer`` from the
        token's ``tid`` claim, which must be a GUID (Microsoft Entra ID
        ``common``/``organizations`` endpoints).  Which tenants are welcome is
        the caller's decision, based on the returned ``tid``.
    :returns: The validated claims.
    :raises IDTokenError: On any failure; :attr:`reason` says which.
    :raises NonceError: When the nonce is missing (``nonce_missing``) or
        differs (``nonce_mismatch``).
    :raises ConfigError: When the arguments cannot work (see the module docs).
    :raises JWKSError: When the key set had to be fetched and is unusable;
        errors of the cache's ``fetch`` callable propagate too.
    """
    allowed = check_policy(allowed_algs, issuer, client_id, leeway, tenant_independent)
    header_segment, _, _ = split_compact(id_token)
    header = decode_segment(header_segment, part="header", reason="header_invalid")
    kid, alg = _check_header(header, allowed)
    key = keys.key_for(kid, alg)
    claims = json_object(verify_signature(id_token, key, alg), part="payload", reason="malformed")

    # OIDC Core §3.1.3.7 step 2: the issuer, exactly.
    expected_issuer = issuer
    if tenant_independent:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not _GUID.fullmatch(tid):
            raise _fail("tid_invalid", "The ID token has no GUID 'tid' claim")
        expected_issuer = issuer.replace(TENANT_PLACEHOLDER, tid)
    if claims.get("iss") != expected_issuer:
        raise _fail("iss_mismatch", f"The ID token was not issued by {issuer}")

    # Steps 3-5: this client must be the one audience; azp, if present, is us.
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if (
        not isinstance(audiences, list)
        or not audiences
        or any(audience != client_id for audience in audiences)
    ):
        raise _fail("aud_mismatch", f"The ID token's audience is not exactly {client_id}")
    if "azp" in claims and claims["azp"] != client_id:
        raise _fail("azp_mismatch", f"The ID token's 'azp' is not {client_id}")

    # §2: sub is at most 255 ASCII characters (control characters refused).
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _SUB.fullmatch(sub):
        raise _fail("sub_invalid", "The ID token 'sub' is not 1 to 255 printable ASCII characters")

    # Steps 9-10 and RFC 7519 §4.1.4/§4.1.5/§4.1.6: the validity window.
    exp = _numeric_claim(claims, "exp", required=True)
    iat = _numeric_claim(claims, "iat", required=True)
    nbf = _numeric_claim(claims, "nbf", required=False)
    if not exp > now - leeway:
        raise _fail("expired", "The ID token has expired")
    if iat > now + leeway:
        raise _fail("iat_in_future", "The ID token was issued in the future")
    if exp - iat > max_lifetime:
        raise _fail("lifetime_too_long", f"The ID token lives longer than {max_lifetime} seconds")
    if nbf is not None and nbf > now + leeway:
        raise _fail("not_yet_valid", "The ID token is not valid yet")

    # Step 11: the nonce sent must come back, compared in constant time.
    if nonce is not None:
        if "nonce" not in claims:
            raise NonceError("The ID token has no 'nonce' claim", reason="nonce_missing")
        if not _same_secret(claims["nonce"], nonce):
            message = "The ID token 'nonce' differs from the one sent"
            raise NonceError(message, reason="nonce_mismatch")

    # Step 13: with max_age, the authentication must be recent enough.
    auth_time = _numeric_claim(claims, "auth_time", required=max_age is not None)
    if max_age is not None and now - auth_time > max_age + leeway:
        raise _fail("auth_time_too_old", f"The authentication is older than max_age={max_age}")

    # §3.1.3.8 (via §3.2.2.9): at_hash binds the access token to this ID token.
    if (
        access_token is not None
        and "at_hash" in claims
        and not _same_secret(claims["at_hash"], _token_hash(access_token, alg, key))
    ):
        raise _fail("at_hash_mismatch", "The ID token 'at_hash' does not match the access token")
    return claims


def _audience_set(aud: object) -> frozenset[str] | None:
    if isinstance(aud, str):
        return frozenset({aud})
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return frozenset(aud)
    return None


def check_refresh_continuity(original: Mapping[str, Any], refreshed: Mapping[str, Any]) -> None:
    """Check that a refreshed ID token continues the original session (OIDC Core §12.2).

    ``iss`` and ``sub`` must be equal and ``aud`` equal as a set.  When both
    tokens carry ``auth_time`` the values must be equal (the refreshed token
    may omit it: §12.2 constrains its value only "if the ID Token contains" it).
    When the refreshed token carries a ``nonce`` it must equal the original's,
    and when it carries a ``sid`` it must equal the original's too (the
    provider's session the relying party indexed at login, Back-Channel
    Logout 1.0 §2.1).  Both mappings must already be validated claims.

    :raises IDTokenError: With reason ``refresh_continuity_<claim>``.
    """
    for name in ("iss", "sub"):
        if not isinstance(original.get(name), str) or refreshed.get(name) != original[name]:
            raise _discontinuity(name)
    original_aud = _audience_set(original.get("aud"))
    if not original_aud or _audience_set(refreshed.get("aud")) != original_aud:
        raise _discontinuity("aud")
    if "auth_time" in original and "auth_time" in refreshed:
        before, after = original["auth_time"], refreshed["auth_time"]
        if not (is_numeric(before) and is_numeric(after) and before == after):
            raise _discontinuity("auth_time")
    if "nonce" in refreshed and not _same_secret(refreshed["nonce"], original.get("nonce")):
        raise _discontinuity("nonce")
    if "sid" in refreshed and refreshed["sid"] != original.get("sid"):
        raise _discontinuity("sid")


def _discontinuity(name: str) -> IDTokenError:
    message = f"The refreshed ID token's '{name}' differs from the original"
    return _fail(f"refresh_continuity_{name}", message)


def decode_unverified_claims(id_token: str) -> dict[str, Any]:
    """Decode an ID token's claims WITHOUT verifying anything.

    For display and diagnostics only (e.g. showing a stored token's claims in a
    debug page): the signature, issuer, audience and times are not checked, so
    nothing returned may be used for an authentication or authorization
    decision.  Use :func:`validate_id_token` for that.  The token is still
    parsed strictly (size, shape, duplicate members).

    :raises IDTokenError: When the token cannot be decoded.
    """
    _, payload_segment, _ = split_compact(id_token)
    return decode_segment(payload_segment, part="payload", reason="malformed")
