"""Functions run in spawned processes by the cross-process store tests.

They live in a module of their own so that a spawned interpreter can import
them by name without importing the test modules.
"""

from __future__ import annotations

import os
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue
from typing import Any


def take_all(store: Any, keys: list[str], barrier: Barrier, results: Queue[Any]) -> None:
    """Race to take every key; report the (key, value) pairs this process won."""
    won: list[tuple[str, bytes]] = []
    try:
        store.get("warm-up")  # connect before the race, not during it
        barrier.wait(60)
        for key in keys:
            time.sleep(0)  # yield the CPU so that the racers interleave key by key
            value = store.take(key)
            if value is not None:
                won.append((key, value))
    except BaseException as exc:
        results.put((os.getpid(), "error", repr(exc)))
        raise
    finally:
        store.close()
    results.put((os.getpid(), "ok", won))


def increment_under_lock(
    store: Any,
    directory: str,
    rounds: int,
    barrier: Barrier,
    results: Queue[Any],
) -> None:
    """Increment the counter file ``rounds`` times, each under the store's lock.

    Entering the critical section creates ``inside`` exclusively, so two holders
    at once are detected directly, not only through a lost update.
    """
    counter = Path(directory, "counter")
    inside = Path(directory, "inside")
    done = 0
    try:
        store.get("warm-up")  # connect before the race, not during it
        barrier.wait(60)
        for _ in range(rounds):
            with store.lock("counter", ttl=30, wait=60) as acquired:
                if not acquired:
                    results.put((os.getpid(), "timeout", done))
                    return
                fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
                value = int(counter.read_text())
                time.sleep(0.001)
                counter.write_text(str(value + 1))
                inside.unlink()
            done += 1
    except BaseException as exc:
        results.put((os.getpid(), "error", repr(exc)))
        raise
    finally:
        store.close()
    results.put((os.getpid(), "ok", done))


def pass_the_turn(directory: str, me: int, count: int, rounds: int) -> None:
    """Wait ``rounds`` times for the turn ``n`` with ``n % count == me``, then pass it on.

    The turn is read with ``get`` (from the process's copy while the
    generation is unchanged), so a write of another process that did not
    change the generation leaves this one waiting until the deadline.
    """
    from dash_oauth_otel.stores import DiskcacheStore

    store = DiskcacheStore(directory)
    deadline = time.monotonic() + 90
    try:
        for _ in range(rounds):
            while True:
                turn = int(store.get("turn") or b"-1")
                if turn % count == me:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"process {me} still sees turn {turn}")
                time.sleep(0.001)
            store.set("turn", str(turn + 1).encode(), 600)
    finally:
        store.close()
