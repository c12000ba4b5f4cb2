"""The generation of a store directory: the status of a file that every write changes.

Every :class:`~dash_oauth_otel.stores.DiskcacheStore` write, by any process,
sets the modification time of ``<directory>/dash_oauth_otel.generation`` to a
random value after its transaction commits, and a read reuses a copy only
while the file's status (inode, device, modification and change times) is the
one it saw before reading the database.  The value lives in the file's
metadata, not in its bytes: nothing is mapped or read, so a file that is
truncated, made unreadable or replaced can neither crash a process (no
``SIGBUS``) nor hide a write.  Each of these changes the status itself, and
the next read in every process goes to the database.

The status is trusted only while the path is a regular file owned by this
user (not a symbolic link, a directory or a file of another user).  Otherwise,
and when it is missing, reads make and use no copy, and a fresh file is put in
its place (by a write at once, by a read at most every :data:`RETRY_SECONDS`);
while that fails, a warning is logged once and every read queries SQLite.

One ``lstat`` per read: about 1 to 2 us on Linux.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import time
from contextlib import suppress

__all__ = ["GENERATION_FILE", "RETRY_SECONDS", "Generation", "Stamp"]

GENERATION_FILE = "dash_oauth_otel.generation"
RETRY_SECONDS = 1.0  # how often reads try to put a missing or unusable file back

Stamp = tuple[int, int, int, int]  # inode, device, modification time, change time (ns)

_UID = os.geteuid() if hasattr(os, "geteuid") else 0  # st_uid is 0 where there are no uids
_SECONDS = 2**31 - 2  # random whole seconds stay within every filesystem's time range

_log = logging.getLogger("dash_oauth_otel")


def _random_time() -> int:
    """A random modification time in ns, random in its seconds as well (coarse filesystems)."""
    value = int.from_bytes(os.urandom(8), "big")
    return (1 + value % _SECONDS) * 1_000_000_000 + (value >> 32) % 1_000_000_000


class Generation:
    """The generation file of one store directory, as seen by this process.

    :param directory: The store directory (already checked to be safe).
    """

    __slots__ = ("_path", "_retry_at", "_warned")

    def __init__(self, directory: str) -> None:
        self._path = os.path.join(directory, GENERATION_FILE)
        self._retry_at = 0.0
        self._warned = False
        self.current()  # puts a file in place when there is none

    def current(self) -> Stamp | None:
        """Return the generation, or ``None`` when it cannot be trusted (use no copy)."""
        try:
            info = os.lstat(self._path)
        except OSError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_uid == _UID:
            return (info.st_ino, info.st_dev, info.st_mtime_ns, info.st_ctime_ns)
        now = time.monotonic()
        if now >= self._retry_at:
            self._retry_at = now + RETRY_SECONDS
            self._renew()
        return None

    def advance(self) -> None:
        """Give the file a new random modification time; replace it if that fails.

        Called after every write, committed or not.  Never raises: a file that
        cannot be stamped cannot be trusted by any reader either.
        """
        stamp = _random_time()
        try:
            os.utime(self._path, ns=(stamp, stamp), follow_symlinks=False)
        except OSError:
            self._renew()

    def _renew(self) -> None:
        """Put a fresh stamped file (mode 0o600) at the path, replacing whatever is there."""
        directory, name = os.path.split(self._path)
        temporary = None
        try:
            fd, temporary = tempfile.mkstemp(prefix=name + ".", dir=directory)
            os.close(fd)
            stamp = _random_time()
            os.utime(temporary, ns=(stamp, stamp))
            os.replace(temporary, self._path)
        except OSError as exc:
            if temporary is not None:
                with suppress(OSError):
                    os.unlink(temporary)
            if not self._warned:
                self._warned = True
                _log.warning(
                    "diskcache store: cannot keep the generation file %r (%s: %s); "
                    "every read queries the database until it can",
                    self._path,
                    type(exc).__name__,
                    exc,
                )
