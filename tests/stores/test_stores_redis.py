"""RedisStore: construction, wire layout, pickling, and backend failures."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.stores import RedisStore

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"sealed-secret-value"
PASSWORD = "hunter2-password"


@pytest.fixture
def store(redis_url: str, redis_namespace: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, namespace=redis_namespace)
    yield store
    store.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_missing_redis_package_names_the_extra() -> None:
    code = """
import sys
sys.modules["redis"] = None  # makes "import redis" raise ImportError
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.stores import DiskcacheStore, MemoryStore, RedisStore
MemoryStore().set("k", b"v", 1)
for build in (lambda: RedisStore.from_url("redis://127.0.0.1:6379/0"), lambda: RedisStore()):
    try:
        build()
    except ConfigError as exc:
        print("ConfigError:", exc)
    else:
        print("no error")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    hint = "RedisStore needs the redis package: pip install 'dash-oauth-otel[redis]'"
    assert done.stdout.splitlines() == [f"ConfigError: {hint}"] * 2


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://127.0.0.1:6379", "malformed.*scheme"),
        ("127.0.0.1:6379", "malformed.*scheme"),
        ("redis://127.0.0.1:notaport/0", "malformed.*[Pp]ort"),
        ("", "non-empty str"),
        (b"redis://127.0.0.1", "non-empty str"),
    ],
)
def test_malformed_url_is_a_config_error(url: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RedisStore.from_url(url)  # type: ignore[arg-type]


def test_url_password_never_appears_in_errors_or_repr() -> None:
    with pytest.raises(ConfigError) as bad:
        RedisStore.from_url(f"redis://:{PASSWORD}@127.0.0.1:notaport/0")
    assert PASSWORD not in str(bad.value)
    store = RedisStore.from_url(
        f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0", socket_timeout=1
    )
    try:
        assert PASSWORD not in repr(store)
        with pytest.raises(StoreError, match="Redis store failed to GET: ConnectionError") as info:
            store.get("k")
        assert PASSWORD not in str(info.value)
        assert info.value.reason == "store_unavailable"
        with pytest.raises(StoreError, match="failed to SET"):
            store.set("k", SECRET, 60)
        with pytest.raises(StoreError, match="failed to acquire a lock"):
            store.lock("L", ttl=60, wait=0).__enter__()
    finally:
        store.close()


def test_client_or_url_is_required(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigError, match="needs a client= or a url="):
        RedisStore()
    with pytest.raises(ConfigError, match="not both"):
        RedisStore(redis_client, url="redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"namespace": ""}, "namespace"),
        ({"socket_timeout": 0}, "socket_timeout"),
    ],
)
def test_bad_arguments_are_config_errors(
    redis_url: str, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        RedisStore.from_url(redis_url, **kwargs)  # type: ignore[arg-type]


def test_decoding_client_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ConfigError, match="decode_responses=False"):
            RedisStore(client)
    finally:
        client.close()


def test_async_client_is_refused(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        with pytest.raises(ConfigError, match=r"synchronous redis\.Redis client, not Redis"):
            RedisStore(client)  # type: ignore[arg-type]
    finally:
        asyncio.run(client.aclose())


def test_given_client_is_used_and_left_open(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    store = RedisStore(redis_client, namespace=redis_namespace)
    assert store.client is redis_client
    store.set("k", b"v", 60)
    store.close()
    assert redis_client.get(f"{redis_namespace}:k") == b"v"
    assert store.take("k") == b"v"


def test_wire_layout(store: RedisStore, redis_client: redis.Redis) -> None:
    ns = store.namespace
    store.set("k", b"v", 10)
    assert redis_client.get(f"{ns}:k") == b"v"
    assert 9000 < redis_client.pttl(f"{ns}:k") <= 10000
    store.set("short", b"v", 0.0001)  # rounded up to one millisecond, not zero
    with store.lock("L", ttl=5, wait=0) as acquired:
        assert acquired
        token = redis_client.get(f"{ns}:lock:L")
        assert token is not None
        assert len(token) == 32
        assert 4000 < redis_client.pttl(f"{ns}:lock:L") <= 5000
    assert redis_client.exists(f"{ns}:lock:L") == 0


def test_release_script_leaves_a_foreign_token(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    key = f"{store.namespace}:lock:L"
    with store.lock("L", ttl=60, wait=0) as acquired:
        assert acquired
        redis_client.set(key, b"someone-else", px=60_000)
    assert redis_client.get(key) == b"someone-else"


def test_wrong_type_is_a_store_error(store: RedisStore, redis_client: redis.Redis) -> None:
    redis_client.hset(f"{store.namespace}:k", "field", "value")
    with pytest.raises(StoreError, match="failed to GET: ResponseError: WRONGTYPE"):
        store.get("k")
    with pytest.raises(StoreError, match="failed to GETDEL: ResponseError: WRONGTYPE"):
        store.take("k")


def test_pickles_as_its_url(store: RedisStore) -> None:
    store.set("k", SECRET, 60)
    data = pickle.dumps(store)
    assert SECRET not in data
    clone = pickle.loads(data)  # noqa: S301 - data pickled by this test
    try:
        assert isinstance(clone, RedisStore)
        assert clone.namespace == store.namespace
        assert clone.take("k") == SECRET
    finally:
        clone.close()


def test_client_built_store_does_not_pickle(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    with pytest.raises(TypeError, match=r"RedisStore\.from_url"):
        pickle.dumps(store)
