"""The Store contract, run against MemoryStore, DiskcacheStore and RedisStore."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from dash_oauth_otel._types import Store
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.stores import DiskcacheStore

TTL = 60.0
SHORT_TTL = 0.3
PAST_SHORT_TTL = 0.6


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)


def test_set_get_delete(store: Store) -> None:
    assert store.get("k") is None
    store.set("k", b"one", TTL)
    assert store.get("k") == b"one"
    assert store.get("k") == b"one", "get must not consume"
    store.set("k", b"two", TTL)
    assert store.get("k") == b"two"
    store.delete("k")
    assert store.get("k") is None
    store.delete("k")
    store.delete("never-set")


def test_keys_are_independent(store: Store) -> None:
    store.set("a", b"1", TTL)
    store.set("b", b"2", TTL)
    store.delete("a")
    assert store.get("a") is None
    assert store.get("b") == b"2"


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\xff" * 8, bytes(range(256)), b"x" * 100_000],
    ids=["empty", "binary", "all-bytes", "100kB"],
)
def test_values_round_trip_exactly(store: Store, value: bytes) -> None:
    store.set("k", value, TTL)
    got = store.get("k")
    assert got == value
    assert type(got) is bytes
    assert store.take("k") == value
    assert store.get("k") is None


def test_bytes_like_values_are_stored_as_bytes(store: Store) -> None:
    store.set("k", bytearray(b"ba"), TTL)  # type: ignore[arg-type]
    assert store.get("k") == b"ba"
    store.set("k", memoryview(b"mv"), TTL)  # type: ignore[arg-type]
    assert store.get("k") == b"mv"


def test_add_only_when_absent(store: Store) -> None:
    assert store.add("k", b"first", TTL) is True
    assert store.add("k", b"second", TTL) is False
    assert store.get("k") == b"first"
    store.delete("k")
    assert store.add("k", b"third", TTL) is True
    assert store.get("k") == b"third"


def test_add_does_not_replace_a_set_value(store: Store) -> None:
    store.set("k", b"set", TTL)
    assert store.add("k", b"added", TTL) is False
    assert store.get("k") == b"set"


def test_entries_expire_after_ttl(store: Store) -> None:
    store.set("set", b"v", SHORT_TTL)
    assert store.add("added", b"v", SHORT_TTL) is True
    store.set("taken", b"v", SHORT_TTL)
    store.set("long", b"v", TTL)
    assert store.get("set") == b"v"
    time.sleep(PAST_SHORT_TTL)
    assert store.get("set") is None
    assert store.get("added") is None
    assert store.take("taken") is None
    assert store.get("long") == b"v"


def test_add_succeeds_over_an_expired_entry(store: Store) -> None:
    store.set("k", b"old", SHORT_TTL)
    assert store.add("k", b"new", TTL) is False
    time.sleep(PAST_SHORT_TTL)
    assert store.add("k", b"new", TTL) is True
    assert store.get("k") == b"new"


def test_set_resets_the_ttl(store: Store) -> None:
    store.set("k", b"short", SHORT_TTL)
    store.set("k", b"long", TTL)
    time.sleep(PAST_SHORT_TTL)
    assert store.get("k") == b"long"


def test_take_returns_once(store: Store) -> None:
    assert store.take("k") is None
    store.set("k", b"v", TTL)
    assert store.take("k") == b"v"
    assert store.take("k") is None
    assert store.get("k") is None
    assert store.add("k", b"again", TTL) is True


def test_take_is_exclusive_between_threads(store: Store) -> None:
    keys = [f"k{i}" for i in range(200)]
    for key in keys:
        store.set(key, key.encode(), TTL)
    results: list[list[str]] = [[] for _ in range(8)]
    barrier = threading.Barrier(len(results))

    def worker(out: list[str]) -> None:
        barrier.wait()
        for key in keys:
            value = store.take(key)
            if value is not None:
                assert value == key.encode()
                out.append(key)
        if isinstance(store, DiskcacheStore):
            store.close()

    threads = [threading.Thread(target=worker, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    taken = sorted(key for out in results for key in out)
    assert taken == sorted(keys)


def test_namespaces_are_isolated(make_shared_store: Callable[..., Store]) -> None:
    first, second = make_shared_store(), make_shared_store("-other")
    first.set("k", b"first", TTL)
    assert second.get("k") is None
    assert second.add("k", b"second", TTL) is True
    assert first.take("k") == b"first"
    assert second.get("k") == b"second"
    with first.lock("L", ttl=TTL, wait=0) as got_first, second.lock("L", ttl=TTL, wait=0) as got:
        assert got_first and got


def test_stores_sharing_a_backend_see_each_other(make_shared_store: Callable[..., Store]) -> None:
    first, second = make_shared_store(), make_shared_store()
    first.set("k", b"v", TTL)
    assert second.take("k") == b"v"
    assert first.get("k") is None
    with first.lock("L", ttl=TTL, wait=0) as got_first, second.lock("L", ttl=TTL, wait=0) as got:
        assert got_first is True
        assert got is False


# -- locks -------------------------------------------------------------------------


def test_lock_is_exclusive(store: Store) -> None:
    with store.lock("L", ttl=TTL, wait=0) as acquired:
        assert acquired is True
        with store.lock("L", ttl=TTL, wait=0) as again:
            assert again is False
        with store.lock("other", ttl=TTL, wait=0) as other:
            assert other is True
    with store.lock("L", ttl=TTL, wait=0) as after:
        assert after is True


def test_lock_wait_times_out(store: Store) -> None:
    with store.lock("L", ttl=TTL, wait=0) as held:
        assert held
        started = time.monotonic()
        with store.lock("L", ttl=TTL, wait=0.3) as acquired:
            elapsed = time.monotonic() - started
            assert acquired is False
    assert 0.3 <= elapsed < 2.0
    with store.lock("L", ttl=TTL, wait=0) as after:
        assert after is True, "a holder that failed to acquire must not block others"


def test_lock_waits_for_release(store: Store) -> None:
    entered = threading.Event()
    holding_for = 0.3

    def holder() -> None:
        with store.lock("L", ttl=TTL, wait=0) as acquired:
            assert acquired
            entered.set()
            time.sleep(holding_for)
        if isinstance(store, DiskcacheStore):
            store.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(10)
    started = time.monotonic()
    with store.lock("L", ttl=TTL, wait=10) as acquired:
        elapsed = time.monotonic() - started
        assert acquired is True
    thread.join(10)
    assert 0.1 < elapsed < 5.0


def test_lock_expires_after_ttl(store: Store) -> None:
    first = store.lock("L", ttl=SHORT_TTL, wait=0)
    assert first.__enter__() is True
    with store.lock("L", ttl=TTL, wait=0) as early:
        assert early is False
    time.sleep(PAST_SHORT_TTL)
    with store.lock("L", ttl=TTL, wait=0) as late:
        assert late is True
    first.__exit__(None, None, None)


def test_expired_holder_does_not_release_the_new_owner(store: Store) -> None:
    stale = store.lock("L", ttl=SHORT_TTL, wait=0)
    assert stale.__enter__() is True
    time.sleep(PAST_SHORT_TTL)
    current = store.lock("L", ttl=TTL, wait=0)
    assert current.__enter__() is True
    stale.__exit__(None, None, None)
    with store.lock("L", ttl=TTL, wait=0) as intruder:
        assert intruder is False, "the stale holder released a lock it no longer owned"
    current.__exit__(None, None, None)
    with store.lock("L", ttl=TTL, wait=0) as after:
        assert after is True


def test_lock_is_released_when_the_block_raises(store: Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.lock("L", ttl=TTL, wait=0) as acquired:
        assert acquired
        raise Boom
    with store.lock("L", ttl=TTL, wait=0) as after:
        assert after is True


def test_lock_is_taken_on_enter_not_on_call(store: Store) -> None:
    manager = store.lock("L", ttl=TTL, wait=0)
    with store.lock("L", ttl=TTL, wait=0) as first:
        assert first is True
    with manager as acquired:
        assert acquired is True


def test_lock_wait_zero_tries_once(store: Store) -> None:
    with store.lock("L", ttl=TTL, wait=0) as held:
        assert held
        started = time.monotonic()
        with store.lock("L", ttl=TTL, wait=0) as acquired:
            assert acquired is False
        assert time.monotonic() - started < 0.5


# -- argument checks ----------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, -1, 0.0, float("nan"), float("inf"), True, "5", None])
def test_bad_ttl_is_a_config_error(store: Store, ttl: object) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        store.set("k", b"v", ttl)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl"):
        store.add("k", b"v", ttl)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl"):
        store.lock("L", ttl=ttl, wait=0)  # type: ignore[arg-type]
    assert store.get("k") is None


@pytest.mark.parametrize("wait", [-0.1, float("nan"), float("inf"), None])
def test_bad_wait_is_a_config_error(store: Store, wait: object) -> None:
    with pytest.raises(ConfigError, match="wait"):
        store.lock("L", ttl=TTL, wait=wait)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["", None, b"k", 3])
def test_bad_key_is_an_input_error(store: Store, key: object) -> None:
    for call in (
        lambda: store.set(key, b"v", TTL),  # type: ignore[arg-type]
        lambda: store.add(key, b"v", TTL),  # type: ignore[arg-type]
        lambda: store.get(key),  # type: ignore[arg-type]
        lambda: store.take(key),  # type: ignore[arg-type]
        lambda: store.delete(key),  # type: ignore[arg-type]
        lambda: store.lock(key, ttl=TTL, wait=0),  # type: ignore[arg-type]
    ):
        with pytest.raises(InputError):
            call()


@pytest.mark.parametrize("value", ["text", None, 3, [1]])
def test_non_bytes_value_is_an_input_error(store: Store, value: object) -> None:
    with pytest.raises(InputError, match="bytes"):
        store.set("k", value, TTL)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="bytes"):
        store.add("k", value, TTL)  # type: ignore[arg-type]
    assert store.get("k") is None


# -- property tests -----------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    # one store serves every example; the keys of different examples do not clash
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

keys = st.text(min_size=1, max_size=40)
values = st.binary(max_size=300)


@PROPERTY_SETTINGS
@given(key=keys, value=values)
def test_any_key_and_value_round_trip(store: Store, key: str, value: bytes) -> None:
    store.set(key, value, TTL)
    assert store.get(key) == value
    assert store.take(key) == value
    assert store.get(key) is None


operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "add", "get", "take", "delete"]),
        st.sampled_from(["a", "b", "ä", "a:b", "lock"]),
        values,
    ),
    max_size=30,
)


@PROPERTY_SETTINGS
@given(ops=operations)
def test_behaves_like_a_dictionary(store: Store, ops: list[tuple[str, str, bytes]]) -> None:
    model: dict[str, bytes] = {}
    prefix = f"{time.monotonic_ns()}:"
    for op, name, value in ops:
        key = prefix + name
        if op == "set":
            store.set(key, value, TTL)
            model[key] = value
        elif op == "add":
            assert store.add(key, value, TTL) is (key not in model)
            model.setdefault(key, value)
        elif op == "get":
            assert store.get(key) == model.get(key)
        elif op == "take":
            assert store.take(key) == model.pop(key, None)
        else:
            store.delete(key)
            model.pop(key, None)
    for key, value in model.items():
        assert store.get(key) == value


def test_scan_lists_live_keys_with_prefix(store: Store) -> None:
    store.set("session:a", b"1", 30)
    store.set("session:b", b"2", 30)
    store.set("session:gone", b"3", 0.2)
    store.set("state:c", b"4", 30)
    store.set("s*[x]", b"5", 30)
    time.sleep(0.3)
    assert sorted(store.scan("session:")) == ["session:a", "session:b"]
    assert sorted(store.scan("s*[")) == ["s*[x]"]  # glob characters are literal
    assert list(store.scan("nothing:")) == []
