"""URL policy: which endpoints the package may talk to and where it may redirect.

Every configured or discovered endpoint passes :func:`check_endpoint_url`: an
absolute ``https`` URL (``http`` only on a loopback host, and only when the
application opts in), no user info, no fragment, and a host on the allowlist when
one is set.  :func:`same_origin_path` keeps return-to targets on the app's own
origin (RFC 9700 §4.11: open redirectors).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from dash_oauth_otel.errors import ConfigError

__all__ = [
    "check_endpoint_url",
    "host_allowed",
    "is_loopback_host",
    "same_origin_path",
    "strip_query",
]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})


def is_loopback_host(host: str | None) -> bool:
    """Return whether ``host`` names the local machine (``localhost``, 127/8, ``::1``)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Return whether ``host`` matches the allowlist.

    An entry matches exactly; an entry starting with ``.`` matches that domain
    and its subdomains (``.example.com`` matches ``example.com`` and
    ``login.example.com``).  An empty allowlist allows every host.
    """
    entries = [entry.lower().rstrip(".") for entry in allowed_hosts]
    if not entries:
        return True
    host = host.lower().rstrip(".")
    for entry in entries:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def check_endpoint_url(
    url: str,
    *,
    what: str,
    allow_insecure_loopback: bool = False,
    allowed_hosts: Iterable[str] = (),
) -> str:
    """Validate an endpoint URL and return it unchanged.

    :param what: What the URL is, for the error message (``"token endpoint"``).
    :param allow_insecure_loopback: Accept ``http`` on a loopback host (tests and
        local development only).
    :param allowed_hosts: Host allowlist (see :func:`host_allowed`).
    :raises ConfigError: With a message saying what to change.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError(f"The {what} must be a non-empty absolute URL.")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"The {what} must be an absolute http(s) URL, got {strip_query(url)!r}.")
    try:
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError:
        raise ConfigError(f"The {what} has an invalid port.") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"The {what} must not carry user info (user:password@).")
    if parts.fragment:
        raise ConfigError(f"The {what} must not carry a fragment, got {strip_query(url)!r}.")
    if parts.scheme == "http":
        if not is_loopback_host(parts.hostname):
            raise ConfigError(
                f"The {what} must use https; plain http is accepted only on a loopback "
                f"host, got {strip_query(url)!r}."
            )
        if not allow_insecure_loopback:
            raise ConfigError(
                f"The {what} {url!r} uses plain http on loopback; pass "
                "allow_insecure_loopback=True to accept that (local development only)."
            )
    if not host_allowed(parts.hostname, allowed_hosts):
        raise ConfigError(
            f"The {what} host {parts.hostname!r} is not in allowed_hosts; add it there "
            "if it is a legitimate endpoint of your provider."
        )
    return url


def strip_query(url: str) -> str:
    """Return ``url`` without query, fragment or user info (safe for span attributes)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def same_origin_path(target: str | None, *, default: str = "/") -> str:
    r"""Return ``target`` if it is a path on the current origin, else ``default``.

    Accepted: a path starting with a single ``/`` (plus query), with no scheme,
    host, backslash or control character anywhere, so that neither browsers nor
    servers can read it as another origin (``//evil``, ``/\\evil``,
    ``/%5Cevil`` decoded later, ``javascript:``...).
    """
    if not target or not isinstance(target, str) or len(target) > 2048:
        return default
    decoded = unquote(target)
    for form in (target, decoded):
        if not form.startswith("/") or form.startswith("//") or "\\" in form:
            return default
        if form.startswith(("/%2f", "/%2F")):
            return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return urlunsplit(("", "", parts.path, parts.query, ""))
