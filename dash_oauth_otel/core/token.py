"""The token set a login or refresh produces: :class:`OAuthToken`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

__all__ = ["OAuthToken"]


def _redact(value: str | None) -> str:
    if value is None:
        return "None"
    return "'<redacted>'"


@dataclass(frozen=True)
class OAuthToken:
    """Tokens and identity from a completed login or refresh.

    :param access_token: The access token (never logged or shown).
    :param token_type: The token type (``Bearer``).
    :param refresh_token: The refresh token, if one was issued (or kept).
    :param id_token: The raw ID token, if any (needed for ``id_token_hint``).
    :param expires_at: Expiry of the access token, seconds since the epoch, or
        ``None`` when the provider gave no ``expires_in``.
    :param granted_scopes: The scopes granted (the requested ones when the
        provider did not say, RFC 6749 §5.1).
    :param id_token_claims: Claims of the validated ID token.
    :param userinfo: The userinfo response, when fetched.
    :param id_token_validated: Whether ``id_token_claims`` passed validation.
    :param obtained_at: When the token endpoint issued this set (epoch seconds).
    """

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    granted_scopes: tuple[str, ...] = ()
    id_token_claims: Mapping[str, Any] | None = None
    userinfo: Mapping[str, Any] | None = None
    id_token_validated: bool = False
    obtained_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"OAuthToken(access_token={_redact(self.access_token)}, "
            f"token_type={self.token_type!r}, refresh_token={_redact(self.refresh_token)}, "
            f"id_token={_redact(self.id_token)}, expires_at={self.expires_at!r}, "
            f"granted_scopes={list(self.granted_scopes)!r}, subject={self.subject!r})"
        )

    __str__ = __repr__

    @property
    def subject(self) -> str | None:
        """The user's subject: from the validated ID token, else userinfo."""
        for source in (self.id_token_claims, self.userinfo):
            if source and isinstance(source.get("sub"), str):
                return str(source["sub"])
        return None

    @property
    def claims(self) -> dict[str, Any]:
        """Userinfo merged over the ID-token claims (what the app shows as the user)."""
        merged: dict[str, Any] = dict(self.id_token_claims or {})
        merged.update(self.userinfo or {})
        return merged

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds until the access token expires (negative once expired)."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    @property
    def lifetime(self) -> float | None:
        """Seconds the access token was issued for, when known."""
        if self.expires_at is None or self.obtained_at is None:
            return None
        return max(0.0, self.expires_at - self.obtained_at)

    def is_expired(self, *, leeway: float = 0.0, now: float | None = None) -> bool:
        """Whether the access token has expired (or will within ``leeway`` seconds)."""
        remaining = self.expires_in(now)
        return remaining is not None and remaining <= leeway

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (contains secrets: seal it before storing)."""
        data = asdict(self)
        data["granted_scopes"] = list(self.granted_scopes)
        data["id_token_claims"] = dict(self.id_token_claims) if self.id_token_claims else None
        data["userinfo"] = dict(self.userinfo) if self.userinfo else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OAuthToken:
        """Rebuild a token from :meth:`to_dict` output."""
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "Bearer"),
            refresh_token=data.get("refresh_token"),
            id_token=data.get("id_token"),
            expires_at=data.get("expires_at"),
            granted_scopes=tuple(data.get("granted_scopes") or ()),
            id_token_claims=data.get("id_token_claims"),
            userinfo=data.get("userinfo"),
            id_token_validated=bool(data.get("id_token_validated", False)),
            obtained_at=data.get("obtained_at"),
        )
