"""The id of this process, kept current across ``fork`` without a system call per read.

Hot paths (every span, every audit event, every guarded request) ask for it;
``os.getpid()`` is a system call each time, while this value changes only in a
forked child, where :func:`os.register_at_fork` refreshes it.
"""

from __future__ import annotations

import os

__all__ = ["current_pid"]

_pid = os.getpid()


def _refresh() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_refresh)


def current_pid() -> int:
    """Return the id of the current process."""
    return _pid
