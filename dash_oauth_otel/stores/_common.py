"""Argument checks and the lock loop shared by every store.

Each store validates its arguments the same way, so that a bad TTL or a value of
the wrong type fails identically whichever backend is configured:

* a TTL or a wait that is not a finite number (or is out of range) raises
  :class:`~dash_oauth_otel.errors.ConfigError`, because such numbers come from
  the application's configuration;
* a key that is not a non-empty string, or a value that is not bytes, raises
  :class:`~dash_oauth_otel.errors.InputError`.

Locks occupy the ordinary key space: the lock named ``n`` is the key
``lock:n`` (see :data:`LOCK_PREFIX`), holding a random owner token.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import suppress
from typing import TypeGuard

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StoreError

__all__ = [
    "DEFAULT_NAMESPACE",
    "LOCK_PREFIX",
    "check_key",
    "check_namespace",
    "check_ttl",
    "check_value",
    "check_wait",
    "lock_context",
    "new_token",
    "poll_until",
]

DEFAULT_NAMESPACE = "dash_oauth_otel"
"""The key prefix used when the application does not choose one."""

LOCK_PREFIX = "lock:"
"""Keys starting with this prefix hold locks; keep application data out of it."""

_FIRST_DELAY = 0.005
_MAX_DELAY = 0.05
_jitter = random.Random()  # noqa: S311 - spreads polling out; not a security use


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_ttl(ttl: object, *, what: str = "ttl") -> float:
    """Return ``ttl`` as a float, or raise if it is not a positive finite number.

    :param ttl: The time to live in seconds.
    :param what: The argument's name, used in the message.
    :raises ConfigError: ``ttl`` is not a finite number greater than zero.
    """
    if not _is_number(ttl):
        raise ConfigError(f"{what} must be a number of seconds, not {type(ttl).__name__}")
    seconds = float(ttl)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what} must be a positive finite number of seconds, got {seconds!r}")
    return seconds


def check_wait(wait: object) -> float:
    """Return ``wait`` as a float, or raise if it is negative or not finite.

    :param wait: How long a lock acquisition may wait, in seconds (``0`` tries once).
    :raises ConfigError: ``wait`` is not a finite number of at least zero.
    """
    if not _is_number(wait):
        raise ConfigError(f"wait must be a number of seconds, not {type(wait).__name__}")
    seconds = float(wait)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"wait must be a finite number of seconds >= 0, got {seconds!r}")
    return seconds


def check_key(key: object, *, what: str = "key") -> str:
    """Return ``key`` if it is a non-empty string.

    :raises InputError: ``key`` is not a string or is empty.
    """
    if not isinstance(key, str):
        raise InputError(f"store {what} must be a str, not {type(key).__name__}")
    if not key:
        raise InputError(f"store {what} must not be empty")
    return key


def check_value(value: object) -> bytes:
    """Return ``value`` as :class:`bytes` (bytes-like objects are copied).

    :raises InputError: ``value`` is not bytes-like.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InputError(f"store values must be bytes, not {type(value).__name__}")


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a non-empty string.

    :raises ConfigError: ``namespace`` is not a string or is empty.
    """
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError("store namespace must be a non-empty str")
    return namespace


def new_token() -> bytes:
    """Return a fresh random lock owner token."""
    return secrets.token_hex(16).encode("ascii")


def poll_until(
    attempt: Callable[[], bool],
    wait: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Call ``attempt`` until it returns ``True`` or ``wait`` seconds have passed.

    ``attempt`` is always called at least once, and once more at the deadline.
    Between attempts the loop sleeps with exponential backoff (5 ms doubling up
    to 50 ms, with jitter).

    :return: Whether an attempt succeeded.
    """
    deadline = monotonic() + wait
    delay = _FIRST_DELAY
    while True:
        if attempt():
            return True
        remaining = deadline - monotonic()
        if remaining <= 0:
            return False
        sleep(min(remaining, delay * _jitter.uniform(0.5, 1.0)))
        delay = min(delay * 2, _MAX_DELAY)


@contextmanager
def lock_context(acquire: Callable[[], bool], release: Callable[[], None]) -> Iterator[bool]:
    """Yield the result of ``acquire()``, then ``release()`` if it was acquired.

    ``release`` must delete the lock only if it still holds this holder's token.
    When the block raises, a failure to release is suppressed (the lock expires
    by itself) so that the block's own exception propagates; when the block
    completes, a failure to release is raised as
    :class:`~dash_oauth_otel.errors.StoreError`.
    """
    acquired = acquire()
    try:
        yield acquired
    except BaseException:
        if acquired:
            with suppress(StoreError):
                release()
        raise
    if acquired:
        release()
