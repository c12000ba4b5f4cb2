"""A store on a Redis server, shared by every process and host that reaches it.

:class:`RedisStore` is the store for deployments with more than one host, or
whenever a Redis server is already at hand.  Each operation is one Redis command,
atomic on the server:

=========================  ==================================================
``set(key, value, ttl)``   ``SET <ns>:<key> value PX <ms>``
``add(key, value, ttl)``   ``SET <ns>:<key> value NX PX <ms>``
``get(key)``               ``GET <ns>:<key>``
``take(key)``              ``GETDEL <ns>:<key>`` (needs Redis 6.2 or later)
``delete(key)``            ``DEL <ns>:<key>``
``lock(name)``             ``SET <ns>:lock:<name> token NX PX <ms>``, released by
                           a Lua script that deletes the key only if it still
                           holds ``token``
=========================  ==================================================

TTLs are rounded up to whole milliseconds and expire on the server's clock.
The ``redis`` package is imported only when a store is built; install it with
``pip install 'dash-oauth-otel[redis]'``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.stores._common import DEFAULT_NAMESPACE
from dash_oauth_otel.stores._common import LOCK_PREFIX
from dash_oauth_otel.stores._common import check_key
from dash_oauth_otel.stores._common import check_namespace
from dash_oauth_otel.stores._common import check_ttl
from dash_oauth_otel.stores._common import check_value
from dash_oauth_otel.stores._common import check_wait
from dash_oauth_otel.stores._common import lock_context
from dash_oauth_otel.stores._common import new_token
from dash_oauth_otel.stores._common import poll_until

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisStore"]

_T = TypeVar("_T")

_INSTALL_HINT = "RedisStore needs the redis package: pip install 'dash-oauth-otel[redis]'"

_RELEASE_SCRIPT = """\
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _check_client(client: object, redis_class: type[Any]) -> None:
    if not isinstance(client, redis_class):
        raise ConfigError(
            f"RedisStore needs a synchronous redis.Redis client, not {type(client).__name__}"
        )
    get_kwargs = getattr(client, "get_connection_kwargs", None)
    options = get_kwargs() if callable(get_kwargs) else {}
    if isinstance(options, dict) and options.get("decode_responses"):
        raise ConfigError(
            "RedisStore needs a client built with decode_responses=False; the store handles bytes"
        )


def _client_from_url(redis_class: type[Redis], url: object, timeout: float) -> Redis:
    if not isinstance(url, str) or not url:
        raise ConfigError("RedisStore url must be a non-empty str")
    try:
        return redis_class.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError as exc:
        raise ConfigError(f"RedisStore url is malformed: {exc}") from exc


class RedisStore:
    """A ``Store`` on a Redis server (Redis 6.2 or later).

    Pass either a ready ``client`` or a ``url``; :meth:`from_url` is the same as
    ``RedisStore(url=...)``.

    :param client: A synchronous :class:`redis.Redis` client built with
        ``decode_responses=False`` (the default).  The store does not close it.
    :param url: A ``redis://``, ``rediss://`` or ``unix://`` URL; the store builds
        and owns its client.
    :param namespace: Prefix of every key (``<namespace>:<key>``).
    :param socket_timeout: Seconds to wait for a connection or an answer when
        the store builds the client from ``url`` (options in the URL's query
        string take precedence).
    :raises ConfigError: The ``redis`` package is missing, both or neither of
        ``client`` and ``url`` were given, the URL is malformed, or the client
        is unsuitable.

    Construction does not contact the server; an unreachable server surfaces
    as :class:`~dash_oauth_otel.errors.StoreError` on the first operation.

    **Processes.**  A store built from a URL pickles as its URL (including any
    password in it), namespace and timeout, and reconnects in the process that
    unpickles it.  A store built around a client object cannot be pickled.
    Redis clients detect ``fork`` and open fresh connections in the child.
    """

    def __init__(
        self,
        client: Redis | None = None,
        *,
        url: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        socket_timeout: float = 5.0,
    ) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(_INSTALL_HINT) from exc
        self._namespace = check_namespace(namespace)
        self._socket_timeout = check_ttl(socket_timeout, what="socket_timeout")
        self._errors: type[Exception] = redis.RedisError
        self._response_error: type[Exception] = redis.ResponseError
        if client is None:
            if url is None:
                raise ConfigError("RedisStore needs a client= or a url=")
            client = _client_from_url(redis.Redis, url, self._socket_timeout)
        elif url is not None:
            raise ConfigError("RedisStore takes a client= or a url=, not both")
        _check_client(client, redis.Redis)
        self._url = url
        self._client: Redis = client
        self._owns_client = url is not None
        self._prefix = self._namespace + ":"
        self._release_script = client.register_script(_RELEASE_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        socket_timeout: float = 5.0,
    ) -> RedisStore:
        """Build a store that owns a client for ``url``.

        :param url: e.g. ``redis://localhost:6379/0`` or ``rediss://:secret@host/1``.
        :param namespace: Prefix of every key.
        :param socket_timeout: Connect and read timeout in seconds.
        :raises ConfigError: The URL is malformed or ``redis`` is not installed.
        """
        return cls(url=url, namespace=namespace, socket_timeout=socket_timeout)

    @property
    def namespace(self) -> str:
        """The key prefix of this store."""
        return self._namespace

    @property
    def client(self) -> Redis:
        """The underlying Redis client."""
        return self._client

    def __repr__(self) -> str:
        return f"RedisStore(namespace={self._namespace!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str, float]]:
        if self._url is None:
            raise TypeError(
                "a RedisStore built around a client object cannot be pickled; "
                "build it with RedisStore.from_url(url) so that workers can reconnect"
            )
        return (_reconnect, (self._url, self._namespace, self._socket_timeout))

    def _call(self, operation: str, command: Callable[[], _T]) -> _T:
        try:
            return command()
        except self._errors as exc:
            if isinstance(exc, self._response_error) and "unknown command" in str(exc).lower():
                message = f"Redis rejected {operation}: {exc}; RedisStore needs Redis 6.2 or later"
            else:
                message = f"Redis store failed to {operation}: {type(exc).__name__}: {exc}"
            raise StoreError(message, reason="store_unavailable") from exc

    def _key(self, key: str) -> str:
        return self._prefix + check_key(key)

    @staticmethod
    def _as_result(value: object) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        raise StoreError(
            f"Redis answered with {type(value).__name__} where bytes were expected",
            reason="store_corrupt",
        )

    # -- the Store protocol -----------------------------------------------------

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value."""
        full, data, ms = self._key(key), check_value(value), _milliseconds(check_ttl(ttl))
        self._call("SET", lambda: self._client.set(full, data, px=ms))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent; return whether it was stored."""
        full, data, ms = self._key(key), check_value(value), _milliseconds(check_ttl(ttl))
        return bool(self._call("SET NX", lambda: self._client.set(full, data, px=ms, nx=True)))

    def get(self, key: str) -> bytes | None:
        """Return the value under ``key``, or ``None`` when absent or expired."""
        full = self._key(key)
        return self._as_result(self._call("GET", lambda: self._client.get(full)))

    def take(self, key: str) -> bytes | None:
        """Return and delete the value under ``key`` with ``GETDEL`` (at most once)."""
        full = self._key(key)
        return self._as_result(self._call("GETDEL", lambda: self._client.getdel(full)))

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting an absent key is not an error."""
        full = self._key(key)
        self._call("DEL", lambda: self._client.delete(full))

    def scan(self, prefix: str) -> Iterator[str]:
        """Iterate over the keys starting with ``prefix`` with ``SCAN`` (never ``KEYS``)."""
        pattern = _glob_escape(self._prefix + prefix) + "*"
        keys = self._call("SCAN", lambda: list(self._client.scan_iter(match=pattern, count=500)))
        for key in keys:
            text = key.decode() if isinstance(key, bytes) else str(key)
            yield text[len(self._prefix) :]

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock ``name`` (key ``<namespace>:lock:<name>``) across all clients.

        :param ttl: Seconds after which the lock expires by itself.
        :param wait: Seconds to keep trying; ``0`` tries once.
        :return: A context manager yielding whether the lock was acquired.  On
            exit the lock is released only if it still holds this holder's token.
        """
        key = self._prefix + LOCK_PREFIX + check_key(name, what="lock name")
        ms, wait = _milliseconds(check_ttl(ttl)), check_wait(wait)
        token = new_token()

        def attempt() -> bool:
            return bool(
                self._call("acquire a lock", lambda: self._client.set(key, token, px=ms, nx=True))
            )

        def release() -> None:
            self._call("release a lock", lambda: self._release_script(keys=[key], args=[token]))

        return lock_context(lambda: poll_until(attempt, wait), release)

    def close(self) -> None:
        """Close the client if this store built it from a URL."""
        if self._owns_client:
            self._call("close", self._client.close)


def _reconnect(url: str, namespace: str, socket_timeout: float) -> RedisStore:
    """Rebuild a pickled :class:`RedisStore` from its URL."""
    return RedisStore(url=url, namespace=namespace, socket_timeout=socket_timeout)
