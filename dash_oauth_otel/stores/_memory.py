"""An in-process store: a dictionary guarded by a lock.

:class:`MemoryStore` is shared by the threads of **one** process only.  Use it in
tests and in single-process development servers (``app.run(debug=True)`` with
one worker).  Under gunicorn with several workers, or any setup with more than
one process, each process would hold its own copy: a login started in one
worker could not be completed in another, and locks would not exclude other
workers.  Use :class:`~dash_oauth_otel.stores.DiskcacheStore` or
:class:`~dash_oauth_otel.stores.RedisStore` there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager

from dash_oauth_otel.stores._common import LOCK_PREFIX
from dash_oauth_otel.stores._common import check_key
from dash_oauth_otel.stores._common import check_ttl
from dash_oauth_otel.stores._common import check_value
from dash_oauth_otel.stores._common import check_wait
from dash_oauth_otel.stores._common import lock_context
from dash_oauth_otel.stores._common import new_token
from dash_oauth_otel.stores._common import poll_until

__all__ = ["MemoryStore"]

_SWEEP_EVERY = 1024


class MemoryStore:
    """A thread-safe, single-process implementation of the ``Store`` protocol.

    Entries expire on ``clock``, which defaults to :func:`time.monotonic` and can
    be replaced by a fake clock in tests.  Expired entries are dropped when they
    are read and by a sweep every 1024 writes, so memory stays bounded by the
    live entries.

    Waiting for a lock always uses the real :func:`time.monotonic`, so a frozen
    fake clock cannot make :meth:`lock` wait forever.

    :param clock: Returns the current time in seconds; only differences matter.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._mutex = threading.Lock()
        self._writes = 0

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self._entries)})"

    # -- helpers (the caller holds self._mutex) --------------------------------

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if now >= expires_at:
            del self._entries[key]
            return None
        return value

    def _store(self, key: str, value: bytes, ttl: float, now: float) -> None:
        self._entries[key] = (value, now + ttl)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            expired = [k for k, (_, at) in self._entries.items() if now >= at]
            for k in expired:
                del self._entries[k]

    # -- the Store protocol -----------------------------------------------------

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value."""
        key, value, ttl = check_key(key), check_value(value), check_ttl(ttl)
        with self._mutex:
            self._store(key, value, ttl, self._clock())

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent or expired; return whether it was."""
        key, value, ttl = check_key(key), check_value(value), check_ttl(ttl)
        with self._mutex:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._store(key, value, ttl, now)
            return True

    def get(self, key: str) -> bytes | None:
        """Return the value under ``key``, or ``None`` when absent or expired."""
        key = check_key(key)
        with self._mutex:
            return self._live(key, self._clock())

    def take(self, key: str) -> bytes | None:
        """Return and delete the value under ``key``; one caller gets it, at most once."""
        key = check_key(key)
        with self._mutex:
            value = self._live(key, self._clock())
            if value is not None:
                del self._entries[key]
            return value

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting an absent key is not an error."""
        key = check_key(key)
        with self._mutex:
            self._entries.pop(key, None)

    def scan(self, prefix: str) -> Iterator[str]:
        """Iterate over the live keys starting with ``prefix``."""
        with self._mutex:
            now = self._clock()
            found = [k for k in list(self._entries) if k.startswith(prefix) and self._live(k, now)]
        yield from found

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock ``name`` (the key ``lock:<name>``) across this process's threads.

        :param ttl: Seconds after which the lock expires by itself.
        :param wait: Seconds to keep trying; ``0`` tries once.
        :return: A context manager yielding whether the lock was acquired.  On
            exit the lock is released only if this holder still owns it.
        """
        key = LOCK_PREFIX + check_key(name, what="lock name")
        ttl, wait = check_ttl(ttl), check_wait(wait)
        token = new_token()

        def acquire() -> bool:
            return poll_until(lambda: self.add(key, token, ttl), wait)

        def release() -> None:
            with self._mutex:
                if self._live(key, self._clock()) == token:
                    del self._entries[key]

        return lock_context(acquire, release)

    def close(self) -> None:
        """Drop every entry."""
        with self._mutex:
            self._entries.clear()
