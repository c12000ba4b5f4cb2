"""Fixtures for the store tests: real Redis, real diskcache, no mocks.

Redis tests need the server named by ``DASH_OAUTH_OTEL_TEST_REDIS_URL``
(default ``redis://127.0.0.1:6379/0``).  When it is unreachable they fail with
a message saying how to start it; they are never skipped.  Each Redis test uses
a namespace of its own and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from dash_oauth_otel.stores import DiskcacheStore
from dash_oauth_otel.stores import MemoryStore
from dash_oauth_otel.stores import RedisStore

REDIS_URL = os.environ.get("DASH_OAUTH_OTEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}); the store tests need it. "
            f"Start it with: {START_REDIS}",
            pytrace=False,
        )
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_namespace(redis_client: redis.Redis) -> Iterator[str]:
    namespace = f"dash_oauth_otel_test_{uuid.uuid4().hex}"
    yield namespace
    keys = list(redis_client.scan_iter(match=f"{namespace}*", count=1000))
    if keys:
        redis_client.delete(*keys)


StoreFactory = Callable[..., "DiskcacheStore | MemoryStore | RedisStore"]


def _factory(
    kind: str, request: pytest.FixtureRequest, directory: Path
) -> tuple[StoreFactory, list[DiskcacheStore | MemoryStore | RedisStore]]:
    """Return a function building stores of ``kind`` that share one backend."""
    opened: list[DiskcacheStore | MemoryStore | RedisStore] = []
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        base = request.getfixturevalue("redis_namespace")
    memory = MemoryStore() if kind == "memory" else None

    def make(suffix: str = "") -> DiskcacheStore | MemoryStore | RedisStore:
        store: DiskcacheStore | MemoryStore | RedisStore
        if kind == "memory":
            assert memory is not None
            store = memory
        elif kind == "diskcache":
            store = DiskcacheStore(directory, namespace=f"test{suffix}")
        else:
            store = RedisStore.from_url(url, namespace=base + suffix)
        opened.append(store)
        return store

    return make, opened


ALL_KINDS = [
    "memory",
    "diskcache",
    pytest.param("redis", marks=pytest.mark.redis),
]
SHARED_KINDS = [
    "diskcache",
    pytest.param("redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=ALL_KINDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Build stores of every kind; calls with the same suffix share state."""
    make, opened = _factory(request.param, request, tmp_path / "cache")
    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> DiskcacheStore | MemoryStore | RedisStore:
    return make_store()


@pytest.fixture(params=SHARED_KINDS)
def make_shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Build stores shared between processes (diskcache and Redis)."""
    make, opened = _factory(request.param, request, tmp_path / "cache")
    yield make
    for store in opened:
        store.close()
