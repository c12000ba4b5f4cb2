"""The embedded default store: a SQLite database on local disk, via ``diskcache``.

:class:`DiskcacheStore` is shared by every process of one host that opens the
same directory (e.g. the workers of ``gunicorn -w 4``), with no server to run.
It is **not** shared between hosts: behind a load balancer with several
machines, or in containers that do not share a volume, use
:class:`~dash_oauth_otel.stores.RedisStore`.

Atomicity rests on SQLite: every write in ``diskcache`` runs inside
``BEGIN IMMEDIATE``, which takes the database's single write lock, so
``Cache.pop`` (select then delete), ``Cache.add`` (check then insert) and a
``Cache.transact()`` block are each serialized against every other writer in
every process.  :meth:`DiskcacheStore.take` uses ``pop`` and the lock release
compares and deletes inside ``transact()``.

Expiry uses the wall clock (:func:`time.time`) of the host, which all processes
share; a large clock step moves every deadline with it.

The directory must be on a local filesystem: SQLite's locking, on which all of
the above rests, is unreliable on network filesystems (NFS, SMB).

Reads are served from a per-process copy while nothing has been written: every
write, by any process, gives the file ``dash_oauth_otel.generation`` of the
directory a new random modification time after its transaction commits, and a
read reuses the copy it made only while the file's status is still the one it
saw before reading the database (and the entry has not expired).  A deleted
session is therefore seen by the next read in every process, and a read that
finds nothing written since costs one ``lstat`` and no query.  The generation
fails closed: a file removed, replaced, truncated, made unreadable or turned
into a directory changes its status or is not trusted, so every process reads
the database (see the ``_generation`` module beside this one).  The directory
belongs to the store: a program writing to the database without it (plain
``diskcache`` on the same directory) does not change the generation.
"""

from __future__ import annotations

import getpass
import os
import re
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import suppress
from pathlib import Path
from typing import Any

import diskcache

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
from dash_oauth_otel.stores._generation import Generation
from dash_oauth_otel.stores._generation import Stamp

__all__ = ["DiskcacheStore", "default_directory"]

_BACKEND_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)


_READ_COPIES = 4096  # entries kept per process (the copies are dropped at once past this)


def default_directory() -> Path:
    """Return the per-user default directory, ``<tempdir>/dash_oauth_otel-<user>``.

    On POSIX the suffix is the effective user id, elsewhere the login name.
    """
    if hasattr(os, "geteuid"):
        user = str(os.geteuid())
    else:  # pragma: no cover - not POSIX
        user = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser()) or "user"
    return Path(tempfile.gettempdir()) / f"dash_oauth_otel-{user}"


def _secure_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0o700, then check it is safe to use.

    :raises ConfigError: ``path`` is a symbolic link or not a directory, or (on
        POSIX) is owned by another user or writable by its group or others.
    """
    try:
        for missing in [*reversed(path.parents), path]:
            if not missing.exists():
                with suppress(FileExistsError):  # whatever exists is checked below
                    missing.mkdir(mode=0o700)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(
            f"cannot create the store directory {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"store directory {str(path)!r} is a symbolic link; pass a real path")
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"store directory {str(path)!r} exists and is not a directory")
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX
        return
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"store directory {str(path)!r} is owned by uid {info.st_uid}, not by this "
            f"process (uid {os.geteuid()}); remove it or choose another directory"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"store directory {str(path)!r} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o}); run chmod 700 on it"
        )


class DiskcacheStore:
    """A ``Store`` shared by the processes of one host through a SQLite file.

    :param directory: Where the database lives.  ``None`` selects
        :func:`default_directory`, a per-user directory in the system temporary
        directory.  A missing directory is created with mode 0o700; an existing
        one must be owned by this user and not writable by group or others.
    :param namespace: Prefix of every key (``<namespace>:<key>``), so that
        several applications can share one directory.
    :param timeout: Seconds an operation waits for SQLite's write lock before
        failing with :class:`~dash_oauth_otel.errors.StoreError`.
    :raises ConfigError: The directory is unsafe or cannot be created, or an
        argument is invalid.
    :raises StoreError: The database cannot be opened.

    Entries are never evicted for size: they leave when they expire (expired
    entries are purged a few at a time on each write) or are deleted.

    **Processes.**  The store pickles as its directory path, namespace and
    timeout, so it can be handed to a ``multiprocessing`` *spawn* worker, which
    re-opens the database (and re-checks the directory).  After ``fork`` the
    same object can be used as is: ``diskcache`` opens a new SQLite connection
    in the child.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = 10.0,
    ) -> None:
        self._namespace = check_namespace(namespace)
        self._timeout = check_ttl(timeout, what="timeout")
        path = default_directory() if directory is None else Path(directory)
        path = Path(os.path.abspath(path))
        _secure_directory(path)
        self._directory = str(path)
        self._prefix = self._namespace + ":"
        try:
            self._cache: Any = diskcache.Cache(
                self._directory, timeout=self._timeout, eviction_policy="none"
            )
        except _BACKEND_ERRORS as exc:
            raise self._error("open", exc) from exc
        self._generation = Generation(self._directory)
        # full key -> (generation before the read, value, expiry time or None)
        self._copies: dict[str, tuple[Stamp, bytes, float | None]] = {}

    @property
    def directory(self) -> str:
        """The absolute path of the database directory."""
        return self._directory

    @property
    def namespace(self) -> str:
        """The key prefix of this store."""
        return self._namespace

    def __repr__(self) -> str:
        return f"DiskcacheStore({self._directory!r}, namespace={self._namespace!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str, float]]:
        return (_reopen, (self._directory, self._namespace, self._timeout))

    def _error(self, operation: str, exc: BaseException) -> StoreError:
        if isinstance(exc, diskcache.Timeout):
            detail = f"the database stayed locked for more than {self._timeout:g} s"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return StoreError(
            f"diskcache store in {self._directory!r} failed to {operation}: {detail}",
            reason="store_unavailable",
        )

    def _key(self, key: str) -> str:
        return self._prefix + check_key(key)

    @staticmethod
    def _as_result(value: object) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        raise StoreError(
            f"diskcache store holds a {type(value).__name__} where bytes were expected",
            reason="store_corrupt",
        )

    # -- the Store protocol -----------------------------------------------------

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value."""
        full, data, seconds = self._key(key), check_value(value), check_ttl(ttl)
        try:
            self._cache.set(full, data, expire=seconds)
        except _BACKEND_ERRORS as exc:
            raise self._error("set", exc) from exc
        finally:
            self._generation.advance()

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent or expired; return whether it was."""
        full, data, seconds = self._key(key), check_value(value), check_ttl(ttl)
        try:
            return bool(self._cache.add(full, data, expire=seconds))
        except _BACKEND_ERRORS as exc:
            raise self._error("add", exc) from exc
        finally:
            self._generation.advance()

    def get(self, key: str) -> bytes | None:
        """Return the value under ``key``, or ``None`` when absent or expired."""
        full = self._key(key)
        # The generation is read before the database: a write committed after
        # this point changes it, so a copy made now is never reused past it.
        generation = self._generation.current()
        copy = self._copies.get(full)
        if generation is None:  # the generation cannot be trusted: no copy is used or made
            self._copies.clear()
        elif (
            copy is not None
            and copy[0] == generation
            and (copy[2] is None or copy[2] > time.time())
        ):
            return copy[1]
        try:
            value, expires = self._cache.get(full, expire_time=True)
        except _BACKEND_ERRORS as exc:
            raise self._error("get", exc) from exc
        found = self._as_result(value)
        if found is not None and generation is not None:
            if len(self._copies) >= _READ_COPIES:
                self._copies.clear()
            self._copies[full] = (generation, found, expires)
        return found

    def take(self, key: str) -> bytes | None:
        """Return and delete the value under ``key``; one caller gets it, at most once.

        ``Cache.pop`` selects and deletes the row in one write transaction, so
        concurrent callers in any process are serialized and only one sees it.
        """
        full = self._key(key)
        try:
            value = self._cache.pop(full)
        except _BACKEND_ERRORS as exc:
            raise self._error("take", exc) from exc
        finally:
            self._generation.advance()
        return self._as_result(value)

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting an absent key is not an error."""
        full = self._key(key)
        try:
            self._cache.delete(full)
        except _BACKEND_ERRORS as exc:
            raise self._error("delete", exc) from exc
        finally:
            self._generation.advance()

    def scan(self, prefix: str) -> Iterator[str]:
        """Iterate over the live keys starting with ``prefix`` (a read of the key index)."""
        full = self._prefix + prefix
        try:
            keys = [
                k
                for k in self._cache.iterkeys()
                if isinstance(k, str) and k.startswith(full) and k in self._cache  # not expired
            ]
        except _BACKEND_ERRORS as exc:
            raise self._error("scan", exc) from exc
        for key in keys:
            yield key[len(self._prefix) :]

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock ``name`` (key ``<namespace>:lock:<name>``) across processes.

        Acquiring is ``Cache.add`` of a random owner token with an expiry,
        retried until ``wait`` runs out; releasing deletes the key inside
        ``Cache.transact()`` only if it still holds that token.

        :param ttl: Seconds after which the lock expires by itself.
        :param wait: Seconds to keep trying; ``0`` tries once.
        :return: A context manager yielding whether the lock was acquired.
        """
        key = self._prefix + LOCK_PREFIX + check_key(name, what="lock name")
        seconds, wait = check_ttl(ttl), check_wait(wait)
        token = new_token()

        def attempt() -> bool:
            try:
                return bool(self._cache.add(key, token, expire=seconds))
            except _BACKEND_ERRORS as exc:
                raise self._error("acquire a lock", exc) from exc
            finally:
                self._generation.advance()

        def release() -> None:
            try:
                with self._cache.transact():
                    if self._cache.get(key) == token:
                        self._cache.delete(key)
            except _BACKEND_ERRORS as exc:
                raise self._error("release a lock", exc) from exc
            finally:
                self._generation.advance()

        return lock_context(lambda: poll_until(attempt, wait), release)

    def close(self) -> None:
        """Close this thread's database connection (it reopens on next use)."""
        try:
            self._cache.close()
        except _BACKEND_ERRORS as exc:
            raise self._error("close", exc) from exc


def _reopen(directory: str, namespace: str, timeout: float) -> DiskcacheStore:
    """Rebuild a pickled :class:`DiskcacheStore` (re-checking its directory)."""
    return DiskcacheStore(directory, namespace=namespace, timeout=timeout)
