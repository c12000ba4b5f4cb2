"""Stores: where login state, sessions and refresh locks live between requests.

Every store implements :class:`dash_oauth_otel._types.Store` (bytes in, bytes
out, every entry with a TTL, an atomic :meth:`~dash_oauth_otel._types.Store.take`
and an exclusive :meth:`~dash_oauth_otel._types.Store.lock`).  Pick the one whose
sharing matches how the app is deployed:

:class:`DiskcacheStore` (the default)
    A SQLite file in a per-user directory, shared by every process of **one
    host** (``gunicorn -w 4``, ``flask run``, Dash's debug server).  Nothing to
    run or install.  Not shared between hosts or containers without a common
    volume.

:class:`RedisStore`
    A Redis server (6.2 or later), shared by every process on **every host**
    that reaches it.  Use it behind a load balancer with several machines, on
    platforms whose disk is per-instance, or when Redis is already deployed.
    Needs ``pip install 'dash-oauth-otel[redis]'``.

:class:`MemoryStore`
    A dictionary inside **one process**.  For tests and single-process
    development servers only: with several workers, each would hold its own
    logins and its own locks.

Stores never encrypt: the protocol core seals what it stores.  Backend failures
raise :class:`~dash_oauth_otel.errors.StoreError`; invalid TTLs and construction
arguments raise :class:`~dash_oauth_otel.errors.ConfigError`; keys that are not
non-empty strings and values that are not bytes raise
:class:`~dash_oauth_otel.errors.InputError`.  The lock named ``n`` occupies the
key ``lock:n``, so application keys should not start with ``lock:``.
"""

from __future__ import annotations

from dash_oauth_otel.stores._diskcache import DiskcacheStore as DiskcacheStore
from dash_oauth_otel.stores._diskcache import default_directory as default_directory
from dash_oauth_otel.stores._memory import MemoryStore as MemoryStore
from dash_oauth_otel.stores._redis import RedisStore as RedisStore

__all__ = ["DiskcacheStore", "MemoryStore", "RedisStore", "default_directory"]
