"""Bounds on what anonymous traffic costs: the login rate and the pending logins per browser.

A browser without a session can start logins at will, and each start stores a
login state and (with PAR) makes a client-authenticated request to the
provider.  Two bounds keep that finite:

* :class:`TokenBucket`: each module instance admits, per process,
  ``login_rate_per_second`` login starts a second on average and
  ``login_burst`` at once (:func:`admit_login`); beyond that ``oauth/login``
  answers ``429`` with ``Retry-After`` and starts nothing.  The provider thus
  sees at most ``processes x (login_burst + login_rate_per_second x seconds)``
  PAR requests, and the store holds at most that many login states over any
  ``state_ttl``.
* :func:`remember_pending`: one small index record per browser binding lists
  its pending logins; beyond ``max_pending_logins_per_browser`` the oldest
  login's state is deleted (its callback then fails as expired).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.pages import error_page
from dash_oauth_otel.core.login import AuthorizationRequest
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.state import browser_digest
from dash_oauth_otel.errors import RateLimitedError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import audit

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = ["PENDING_PREFIX", "TokenBucket", "admit_login", "remember_pending"]

PENDING_PREFIX = "login-pending:"
"""Store prefix of the per-browser index of pending logins."""


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

    :param rate: Tokens added per second.
    :param burst: The bucket's size (and its content at start).
    :param clock: A monotonic clock in seconds.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token: ``0.0`` when admitted, else the seconds until one is there."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate


def admit_login(module: DashOAuth, next_path: str) -> Response | None:
    """``None`` when a login may start now, else the ``429`` page (nothing is stored)."""
    wait = module.login_limiter.take()
    if wait <= 0.0:
        return None
    retry_after = max(1, math.ceil(wait))
    exc = RateLimitedError(
        "Too many sign-ins are starting right now; please try again in a moment.",
        retry_after=retry_after,
        phase="login.request",
        reason="login_rate_limited",
    )
    audit.emit(
        audit.AUDIT_LOGIN_RATE_LIMITED,
        **module.client.audit_fields(),
        phase=exc.phase,
        reason=exc.reason,
        error_class=type(exc).__qualname__,
        retry_after=retry_after,
    )
    page = error_page(
        error=exc.error,
        description=exc.message,
        trace_id=None,
        retry_url=module.login_url(next_path),
        clean_path=flask.request.path,
        status=429,
        title="Too many sign-ins",
        retry_after=retry_after,
    )
    return page


def _index_key(binding: str) -> str:
    return PENDING_PREFIX + hashlib.sha256(browser_digest(binding).encode()).hexdigest()


def _sealer(module: DashOAuth) -> Sealer:
    return Sealer(module._secret, "pending-logins", context=module.client.record_context)


def _read(module: DashOAuth, binding: str) -> list[tuple[str, float]]:
    raw = module.client.state_store.get(_index_key(binding))  # type: ignore[union-attr]
    if raw is None:
        return []
    try:
        data = _sealer(module).unseal(raw.decode("ascii", "replace"))
    except StateError:
        return []
    entries = data.get("p")
    if not isinstance(entries, list):
        return []
    return [
        (str(entry[0]), float(entry[1]))
        for entry in entries
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], (int, float))
    ]


def remember_pending(
    module: DashOAuth, binding: str, started: AuthorizationRequest, *, fresh: bool
) -> None:
    """Add a started login to its browser's index; drop the oldest beyond the cap.

    ``fresh`` (a binding issued by this request) skips reading an index that
    cannot exist.  Two processes updating one browser's index at once may lose
    an entry; that login is then only bounded by its ``state_ttl``.
    """
    store = module.client.state_store
    assert store is not None  # noqa: S101 - the module always sets one
    now = module.client.clock()
    entries = [] if fresh else [(k, at) for k, at in _read(module, binding) if at > now]
    entries.append((started.state_key, started.expires_at))
    cap = module.options.max_pending_logins_per_browser
    evicted, entries = entries[:-cap], entries[-cap:]
    for key, _expires_at in evicted:
        store.delete(key)
    if evicted:
        audit.emit(
            audit.AUDIT_PENDING_LOGIN_EVICTED,
            **module.client.audit_fields(),
            reason="max_pending_logins_per_browser",
            evicted=len(evicted),
            limit=cap,
        )
    sealed = _sealer(module).seal({"p": [list(entry) for entry in entries]})
    store.set(_index_key(binding), sealed.encode(), module.client.state_ttl)
