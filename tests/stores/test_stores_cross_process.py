"""Atomicity across processes: spawned workers race on one shared store.

The store object itself is handed to each ``spawn`` worker, so these tests also
prove that DiskcacheStore and a URL-built RedisStore pickle into a working store.
"""

from __future__ import annotations

import importlib
import multiprocessing
import queue
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dash_oauth_otel._types import Store

PROCESSES = 8
KEYS = 300
ROUNDS = 25
TTL = 300.0


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the worker module from a path that spawned children inherit."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    return importlib.import_module("stores_workers")


def run_workers(target: Callable[..., None], args: tuple[Any, ...]) -> list[tuple[int, str, Any]]:
    """Start PROCESSES spawned workers on ``target`` and collect their reports."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*args, barrier, results)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports: list[tuple[int, str, Any]] = []
    deadline = time.monotonic() + 180
    try:
        while len(reports) < PROCESSES and time.monotonic() < deadline:
            try:
                reports.append(results.get(timeout=0.5))
            except queue.Empty:
                if not any(process.is_alive() for process in processes) and results.empty():
                    break
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    failures = [report for report in reports if report[1] != "ok"]
    assert not failures, failures
    assert len(reports) == PROCESSES, f"only {len(reports)} of {PROCESSES} workers reported"
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    return reports


def test_take_is_atomic_across_processes(
    make_shared_store: Callable[..., Store], workers: ModuleType
) -> None:
    store = make_shared_store()
    keys = [f"state:{i:04d}" for i in range(KEYS)]
    for key in keys:
        store.set(key, key.encode(), TTL)

    started = time.perf_counter()
    reports = run_workers(workers.take_all, (store, keys))
    elapsed = time.perf_counter() - started

    taken = Counter(key for _, _, won in reports for key, _ in won)
    assert all(value == key.encode() for _, _, won in reports for key, value in won)
    twice = sorted(key for key, count in taken.items() if count > 1)
    assert not twice, f"{len(twice)} keys were taken more than once"
    assert sorted(taken) == keys, "some keys were never taken"
    winners = {pid for pid, _, won in reports if won}
    print(
        f"{type(store).__name__}: {KEYS} keys, {PROCESSES} processes, {elapsed:.2f} s, "
        f"{len(winners)} processes won keys"
    )
    assert all(store.get(key) is None for key in keys)


def test_lock_is_exclusive_across_processes(
    make_shared_store: Callable[..., Store], workers: ModuleType, tmp_path: Path
) -> None:
    store = make_shared_store()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "counter").write_text("0")

    started = time.perf_counter()
    reports = run_workers(workers.increment_under_lock, (store, str(shared), ROUNDS))
    elapsed = time.perf_counter() - started

    assert sum(done for _, _, done in reports) == PROCESSES * ROUNDS
    assert int((shared / "counter").read_text()) == PROCESSES * ROUNDS
    assert not (shared / "inside").exists()
    print(f"{type(store).__name__}: {PROCESSES * ROUNDS} locked increments, {elapsed:.2f} s")
    with store.lock("counter", ttl=TTL, wait=0) as acquired:
        assert acquired, "the last holder did not release the lock"
