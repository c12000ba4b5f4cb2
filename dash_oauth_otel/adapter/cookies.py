"""The module's cookies: the session id, the browser binding and the sign-out marker.

All are HttpOnly (no script can read them), ``Secure`` and ``__Host-``
prefixed when the app is served over HTTPS, ``Path=/``, and SameSite ``Lax``
unless configured otherwise.  Neither ever holds a token.

* session cookie: the opaque id of the server-side session record;
* binding cookie: a random value set at ``/oauth/login`` whose digest is
  sealed with the login state, checked at the callback (login CSRF and
  callback-swap defence); logout replaces it with a fresh one, to which the
  provider logout's ``state`` is bound;
* signed-out marker: ``1`` (no secret) set by logout and cleared when the user
  starts a login at ``/oauth/login``; while it is present the guard shows the
  signed-out page instead of sending the browser to the provider.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import Request
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.options import SameSite
from dash_oauth_otel.errors import ConfigError

__all__ = ["SIGNED_OUT_MAX_AGE", "CookiePolicy"]

SIGNED_OUT_MAX_AGE = 30 * 24 * 3600
"""Lifetime of the signed-out marker (seconds): it outlives a browser restart."""


@dataclass(frozen=True)
class CookiePolicy:
    """Names and attributes of the module's cookies.

    :param secure: Serve cookies with ``Secure`` and the ``__Host-`` prefix.
    :param samesite: The SameSite attribute.
    :param binding_max_age: Lifetime of the binding cookie (the state TTL).
    :param suffix: Ends the cookie names (the module passes a digest of its
        client): browsers send the cookies of a host to every port of it, so two
        apps on one host must not read, or overwrite, each other's.
    """

    secure: bool
    samesite: SameSite
    binding_max_age: int
    suffix: str = ""

    def __post_init__(self) -> None:
        if self.samesite == "None" and not self.secure:
            raise ConfigError(
                "cookie_samesite='None' needs HTTPS (browsers refuse SameSite=None without "
                "Secure); serve the app over https or use 'Lax'."
            )

    @property
    def _prefix(self) -> str:
        return "__Host-" if self.secure else ""

    def _name(self, base: str) -> str:
        return f"{self._prefix}{base}_{self.suffix}" if self.suffix else f"{self._prefix}{base}"

    @property
    def session_name(self) -> str:
        """The session cookie's name (``dash_oauth_session_<suffix>``)."""
        return self._name("dash_oauth_session")

    @property
    def binding_name(self) -> str:
        """The binding cookie's name (``dash_oauth_binding_<suffix>``)."""
        return self._name("dash_oauth_binding")

    @property
    def signed_out_name(self) -> str:
        """The signed-out marker cookie's name."""
        return self._name("dash_oauth_signed_out")

    def _set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite=self.samesite,
        )

    def _clear(self, response: Response, name: str) -> None:
        response.delete_cookie(
            name, path="/", secure=self.secure, httponly=True, samesite=self.samesite
        )

    def session_id(self, request: Request) -> str | None:
        """The session id presented by the browser, if any."""
        value = request.cookies.get(self.session_name)
        return value if value and len(value) <= 128 else None

    def set_session(self, response: Response, sid: str) -> None:
        """Set the session cookie (a browser-session cookie: no Max-Age)."""
        self._set(response, self.session_name, sid, None)

    def clear_session(self, response: Response) -> None:
        """Remove the session cookie."""
        self._clear(response, self.session_name)

    def binding(self, request: Request) -> str | None:
        """The browser-binding token presented by the browser, if any."""
        value = request.cookies.get(self.binding_name)
        return value if value and len(value) <= 256 else None

    def issue_binding(self, response: Response) -> str:
        """Set a fresh binding cookie and return its value."""
        token = secrets.token_urlsafe(32)
        self._set(response, self.binding_name, token, self.binding_max_age)
        return token

    def reissue_binding(self, response: Response, token: str) -> None:
        """Keep the browser's current binding token, extending its lifetime.

        Reusing it lets two tabs start logins concurrently without breaking
        each other's callback.
        """
        self._set(response, self.binding_name, token, self.binding_max_age)

    def clear_binding(self, response: Response) -> None:
        """Remove the binding cookie."""
        self._clear(response, self.binding_name)

    def signed_out(self, request: Request) -> bool:
        """Whether this browser signed out (and has not asked to sign in since)."""
        return request.cookies.get(self.signed_out_name) == "1"

    def set_signed_out(self, response: Response) -> None:
        """Mark the browser as signed out."""
        self._set(response, self.signed_out_name, "1", SIGNED_OUT_MAX_AGE)

    def clear_signed_out(self, response: Response) -> None:
        """Remove the signed-out marker (the user asked to sign in)."""
        self._clear(response, self.signed_out_name)
