"""Options of the Dash module, validated once at construction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dash_oauth_otel.errors import ConfigError

__all__ = ["ModuleOptions", "SameSite"]

SameSite = Literal["Lax", "Strict", "None"]


@dataclass(frozen=True)
class ModuleOptions:
    """Behaviour of :class:`~dash_oauth_otel.adapter.module.DashOAuth`.

    :param auto_redirect: Send a browser without a session straight to the
        provider; otherwise show a page with a sign-in button.
    :param public_routes: Paths (exact, or prefixes ending in ``/``) served
        without a session, relative to the app's ``routes_pathname_prefix``.
    :param cookie_samesite: SameSite of the module's cookies: ``"Lax"``
        (default), ``"Strict"`` (the callback then takes one same-origin step)
        or ``"None"`` (HTTPS only).
    :param idle_timeout: Seconds without a request after which a session ends.
    :param max_lifetime: Seconds after login after which a session ends.
    :param reauth_after_seconds: Seconds after the user last authenticated at
        the provider after which a fresh authentication is required
        (``max_age=0``, ``auth_time`` checked); never extended by refresh.
    :param indefinite_session: Keep a session whose token expired or failed to
        refresh, marked stale, instead of ending it.
    :param refresh_lead_seconds: Refresh the access token when it expires
        within this many seconds.
    :param refresh_interval_seconds: How often an open page checks in (which
        refreshes the token when due); ``0`` disables the injected interval.
    :param revoke_on_session_end: Revoke the tokens of a session that ends by
        logout, idle timeout or lifetime (needs a revocation endpoint).
    :param provider_logout: On logout, also end the session at the provider
        (OpenID RP-Initiated Logout, an auto-submitted POST to its end-session
        endpoint) when it has one.
    :param logout_id_token_hint: Include the session's ID token as
        ``id_token_hint`` in that POST (some providers, such as Keycloak and
        Glewlwyd, require it).  It is POSTed, so it never appears in a URL or
        the browser history; turn it off only for a provider that refuses it
        (``client_id`` is sent either way).
    :param post_logout_path: Where the signed-out page's "Sign in" returns to
        after a new login.  After logout the browser always lands on the
        module's signed-out page (``oauth/signed-out``, to be registered as
        post-logout redirect URI), never back into the app: the provider's
        single sign-on would sign it in again.
    :param groups_claim: The claim holding the user's groups.
    :param sweep_interval_seconds: How often ended sessions are looked for.
    :param login_rate_per_second: Logins each process starts per second, on
        average, for browsers without a session (a token bucket; each start
        stores one login state and makes one PAR request).  Beyond it
        ``oauth/login`` answers ``429`` with ``Retry-After``.
    :param login_burst: How many such logins a process may start at once
        before the rate applies.
    :param max_pending_logins_per_browser: Logins one browser binding may have
        pending; starting another drops the oldest (its callback then fails
        as expired).
    """

    auto_redirect: bool = True
    public_routes: Sequence[str] = ()
    cookie_samesite: SameSite = "Lax"
    idle_timeout: float = 8 * 3600.0
    max_lifetime: float = 24 * 3600.0
    reauth_after_seconds: float | None = None
    indefinite_session: bool = False
    refresh_lead_seconds: float = 60.0
    refresh_interval_seconds: float = 30.0
    revoke_on_session_end: bool = False
    provider_logout: bool = True
    logout_id_token_hint: bool = True
    post_logout_path: str = "/"
    groups_claim: str = "groups"
    sweep_interval_seconds: float = 60.0
    login_rate_per_second: float = 20.0
    login_burst: int = 100
    max_pending_logins_per_browser: int = 5

    def __post_init__(self) -> None:
        if self.cookie_samesite not in ("Lax", "Strict", "None"):
            raise ConfigError("cookie_samesite must be 'Lax', 'Strict' or 'None'.")
        for name in ("idle_timeout", "max_lifetime", "sweep_interval_seconds"):
            if float(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds.")
        if self.refresh_lead_seconds < 0 or self.refresh_interval_seconds < 0:
            raise ConfigError("refresh_lead_seconds and refresh_interval_seconds must be >= 0.")
        if self.reauth_after_seconds is not None and self.reauth_after_seconds <= 0:
            raise ConfigError("reauth_after_seconds must be positive (or None).")
        if not self.post_logout_path.startswith("/") or self.post_logout_path.startswith("//"):
            raise ConfigError("post_logout_path must be a path on this app, like '/'.")
        if self.login_rate_per_second <= 0:
            raise ConfigError("login_rate_per_second must be a positive number.")
        for name in ("login_burst", "max_pending_logins_per_browser"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a whole number of at least 1.")
        for route in self.public_routes:
            if not isinstance(route, str) or not route.startswith("/"):
                raise ConfigError(
                    f"public_routes entries must be paths starting with '/': {route!r}"
                )
