"""The module's cookies as a test client sees them.

Their names end in a digest of the app's client (``dash_oauth_session_<8 hex>``),
so that two apps on one host keep apart; tests find them by their base name.
"""

from __future__ import annotations

import re
from http.cookiejar import Cookie

import httpx

__all__ = ["binding_cookie", "cookie_name", "session_cookie"]


def _pattern(base: str) -> re.Pattern[str]:
    return re.compile(rf"(__Host-)?{base}_[0-9a-f]{{8}}")


def _find(cookies: httpx.Cookies, base: str) -> Cookie | None:
    pattern = re.compile(rf"(__Host-)?{base}_[0-9a-f]{{8}}")
    return next((c for c in cookies.jar if pattern.fullmatch(c.name)), None)


def cookie_name(cookies: httpx.Cookies, base: str) -> str | None:
    """The full name of the module cookie ``base`` held in ``cookies``, if any."""
    found = _find(cookies, base)
    return found.name if found else None


def _value(cookies: httpx.Cookies, base: str) -> str | None:
    found = _find(cookies, base)
    return found.value if found else None


def session_cookie(cookies: httpx.Cookies) -> str | None:
    """The session id held in ``cookies``, if any."""
    return _value(cookies, "dash_oauth_session")


def binding_cookie(cookies: httpx.Cookies) -> str | None:
    """The browser-binding token held in ``cookies``, if any."""
    return _value(cookies, "dash_oauth_binding")
