"""The process id kept current across fork."""

from __future__ import annotations

import multiprocessing
import os

from dash_oauth_otel._process import current_pid


def _report(queue: multiprocessing.Queue[tuple[int, int]]) -> None:
    queue.put((current_pid(), os.getpid()))


def test_current_pid_is_this_process() -> None:
    assert current_pid() == os.getpid()


def test_a_forked_child_sees_its_own_pid() -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    child = context.Process(target=_report, args=(queue,))
    child.start()
    reported, actual = queue.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    assert reported == actual
    assert reported != os.getpid()
