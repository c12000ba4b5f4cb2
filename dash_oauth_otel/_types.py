"""Shared protocols: the seams between layers.

The protocol core sees stores only through :class:`Store`; the adapter wires in a
concrete one (``dash_oauth_otel.stores``).  Clocks are injectable so that pure
functions can be tested at fixed instants.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol
from typing import runtime_checkable

__all__ = ["Clock", "Store"]

Clock = Callable[[], float]
"""A function returning the current time as seconds since the epoch."""


@runtime_checkable
class Store(Protocol):
    """A shared key-value store: bytes in, bytes out, every entry with a TTL.

    Implementations must make :meth:`take` atomic (a value is returned to at most
    one caller, across every process sharing the store) and :meth:`lock`
    exclusive across those processes.
    """

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value."""

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent; return whether it was stored."""

    def get(self, key: str) -> bytes | None:
        """Return the value under ``key``, or ``None`` when absent or expired."""

    def take(self, key: str) -> bytes | None:
        """Atomically return and delete the value under ``key`` (at most once)."""

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting an absent key is not an error."""

    def scan(self, prefix: str) -> Iterator[str]:
        """Iterate over the live keys starting with ``prefix`` (in no order).

        Used by maintenance (the session sweeper), never on a request path.
        """

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractContextManager[bool]:
        """Hold an exclusive lock named ``name``.

        The context manager yields ``True`` when the lock was acquired within
        ``wait`` seconds and ``False`` otherwise; the lock expires by itself after
        ``ttl`` seconds so that a crashed holder cannot block others forever.
        Leaving the block releases it only if this holder still owns it.
        """
