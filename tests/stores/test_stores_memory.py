"""MemoryStore: expiry on an injected clock, and thread safety."""

from __future__ import annotations

import threading
import time

from dash_oauth_otel.stores import MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_entries_expire_exactly_at_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.set("k", b"v", 10)
    clock.advance(9.999)
    assert store.get("k") == b"v"
    clock.advance(0.001)
    assert store.get("k") is None
    assert store.add("k", b"w", 10) is True
    clock.advance(5)
    assert store.add("k", b"x", 10) is False
    assert store.take("k") == b"w"


def test_lock_expires_on_the_clock() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    stale = store.lock("L", ttl=30, wait=0)
    assert stale.__enter__() is True
    clock.advance(29)
    with store.lock("L", ttl=30, wait=0) as early:
        assert early is False
    clock.advance(1)
    current = store.lock("L", ttl=30, wait=0)
    assert current.__enter__() is True
    stale.__exit__(None, None, None)
    with store.lock("L", ttl=30, wait=0) as intruder:
        assert intruder is False
    current.__exit__(None, None, None)
    with store.lock("L", ttl=30, wait=0) as after:
        assert after is True


def test_waiting_uses_real_time_under_a_frozen_clock() -> None:
    store = MemoryStore(clock=FakeClock())
    with store.lock("L", ttl=30, wait=0) as held:
        assert held
        started = time.monotonic()
        with store.lock("L", ttl=30, wait=0.2) as acquired:
            assert acquired is False
        assert 0.2 <= time.monotonic() - started < 2


def test_expired_entries_are_swept() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for i in range(3000):
        store.set(f"k{i}", b"v", 1)
        clock.advance(0.01)
    # a sweep runs every 1024 writes; without it all 3000 entries would remain
    entries = int(repr(store).removeprefix("MemoryStore(entries=").removesuffix(")"))
    assert entries < 1200


def test_lock_excludes_threads() -> None:
    store = MemoryStore()
    counter = [0]
    inside = threading.Lock()
    overlaps: list[int] = []

    def worker() -> None:
        for _ in range(50):
            with store.lock("counter", ttl=30, wait=30) as acquired:
                assert acquired
                if not inside.acquire(blocking=False):
                    overlaps.append(1)
                    continue
                value = counter[0]
                time.sleep(0)
                counter[0] = value + 1
                inside.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not overlaps
    assert counter[0] == 400


def test_close_drops_everything() -> None:
    store = MemoryStore()
    store.set("k", b"v", 60)
    store.close()
    assert store.get("k") is None
