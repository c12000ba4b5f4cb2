"""DiskcacheStore: directory safety, pickling, and backend failures."""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import diskcache
import pytest

from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.stores import DiskcacheStore
from dash_oauth_otel.stores import _generation
from dash_oauth_otel.stores._diskcache import default_directory
from dash_oauth_otel.stores._generation import GENERATION_FILE

SECRET = b"sealed-secret-value"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def foreign_directory(tmp_path: Path) -> Path:
    """Return a directory owned by another user than this process's."""
    if os.geteuid() == 0:
        path = tmp_path / "foreign"
        path.mkdir(mode=0o700)
        os.chown(path, 65534, 65534)
        return path
    return Path("/")  # owned by root, and this process is not root


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile.gettempdir() at a private directory."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_default_directory_is_per_user_and_private(temp_root: Path) -> None:
    store = DiskcacheStore()
    try:
        expected = temp_root / f"dash_oauth_otel-{os.geteuid()}"
        assert default_directory() == expected
        assert store.directory == str(expected)
        assert mode_of(expected) == 0o700
        assert store.namespace == "dash_oauth_otel"
        store.set("k", b"v", 60)
    finally:
        store.close()
    again = DiskcacheStore()
    try:
        assert again.get("k") == b"v"
    finally:
        again.close()


def test_missing_directory_is_created_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "cache"
    store = DiskcacheStore(target)
    store.close()
    assert mode_of(target) == 0o700
    assert store.directory == str(target)


def test_relative_directory_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = DiskcacheStore("relative-cache")
    store.close()
    assert store.directory == str(tmp_path / "relative-cache")


@pytest.mark.parametrize("mode", [0o770, 0o720, 0o707, 0o777, 0o1777])
def test_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(mode)
    with pytest.raises(ConfigError, match="writable by group or others") as info:
        DiskcacheStore(target)
    assert "chmod 700" in str(info.value)


def test_readable_by_others_is_accepted(tmp_path: Path) -> None:
    target = tmp_path / "readable"
    target.mkdir()
    target.chmod(0o755)
    DiskcacheStore(target).close()


def test_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="owned by uid"):
        DiskcacheStore(foreign_directory(tmp_path))


def test_insecure_default_directory_is_refused(temp_root: Path) -> None:
    squatted = temp_root / f"dash_oauth_otel-{os.geteuid()}"
    squatted.mkdir()
    squatted.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by group or others"):
        DiskcacheStore()


def test_default_directory_of_another_user_is_refused(temp_root: Path) -> None:
    squatted = temp_root / f"dash_oauth_otel-{os.geteuid()}"
    if os.geteuid() == 0:
        squatted.mkdir(mode=0o700)
        os.chown(squatted, 65534, 65534)
    else:
        squatted.symlink_to(foreign_directory(temp_root))
    with pytest.raises(ConfigError, match=r"owned by uid|symbolic link"):
        DiskcacheStore()


def test_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="symbolic link"):
        DiskcacheStore(link)


def test_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")
    with pytest.raises(ConfigError, match="not a directory"):
        DiskcacheStore(target)


def test_uncreatable_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError, match="cannot create the store directory"):
        DiskcacheStore(tmp_path / "file" / "cache")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"namespace": ""}, "namespace"),
        ({"namespace": None}, "namespace"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
    ],
)
def test_bad_arguments_are_config_errors(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        DiskcacheStore(tmp_path / "cache", **kwargs)  # type: ignore[arg-type]


def test_pickles_as_its_directory(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache", namespace="app", timeout=3)
    store.set("k", SECRET, 60)
    data = pickle.dumps(store)
    assert SECRET not in data
    clone = pickle.loads(data)  # noqa: S301 - data pickled by this test
    try:
        assert isinstance(clone, DiskcacheStore)
        assert (clone.directory, clone.namespace) == (store.directory, "app")
        assert clone.take("k") == SECRET
        assert store.get("k") is None
    finally:
        clone.close()
        store.close()


def test_unpickling_rechecks_the_directory(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache")
    store.close()
    data = pickle.dumps(store)
    (tmp_path / "cache").chmod(0o777)
    with pytest.raises(ConfigError, match="writable"):
        pickle.loads(data)  # noqa: S301 - data pickled by this test


def test_keys_are_namespaced_in_the_database(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache", namespace="app")
    store.set("k", b"v", 60)
    with store.lock("L", ttl=60, wait=0) as acquired:
        assert acquired
        raw = diskcache.Cache(store.directory)
        try:
            assert sorted(raw.iterkeys()) == ["app:k", "app:lock:L"]
            assert raw.get("app:k") == b"v"
        finally:
            raw.close()
    store.close()


def test_locked_database_is_a_store_error(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache", timeout=0.2)
    store.set("k", SECRET, 60)
    other = diskcache.Cache(store.directory)
    try:
        with other.transact():  # holds SQLite's write lock
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"locked for more than 0\.2 s") as info:
                store.take("k")
            assert time.monotonic() - started >= 0.15
            assert SECRET.decode() not in str(info.value)
            assert info.value.error == "store_error"
            assert info.value.reason == "store_unavailable"
            with pytest.raises(StoreError, match="failed to set"):
                store.set("k", SECRET, 60)
            with pytest.raises(StoreError, match="failed to acquire a lock"):
                store.lock("L", ttl=60, wait=0).__enter__()
            assert store.get("k") == SECRET, "reads are not blocked by a writer"
    finally:
        other.close()
    assert store.take("k") == SECRET
    store.close()


def test_foreign_value_is_a_store_error(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache")
    raw = diskcache.Cache(store.directory)
    raw.set("dash_oauth_otel:k", {"not": "bytes"})
    raw.close()
    with pytest.raises(StoreError, match="dict where bytes were expected") as info:
        store.get("k")
    assert info.value.reason == "store_corrupt"
    store.close()


def test_expired_entries_are_purged_on_write(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache")
    for i in range(20):
        store.set(f"old{i}", b"v", 0.05)
    time.sleep(0.1)
    for i in range(5):
        store.set(f"new{i}", b"v", 60)
    raw = diskcache.Cache(store.directory)
    try:
        assert len(raw) == 5
    finally:
        raw.close()
        store.close()


def _write_in_another_process(directory: Path, code: str, prefix: Sequence[str] = ()) -> None:
    """Run ``code`` with ``store`` open on ``directory`` in a new interpreter."""
    script = (
        "from dash_oauth_otel.stores import DiskcacheStore\n"
        f"store = DiskcacheStore({str(directory)!r})\n"
        f"{code}\n"
        "store.close()\n"
    )
    subprocess.run([*prefix, sys.executable, "-c", script], check=True, timeout=60)


def test_reads_reuse_their_copy_until_a_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskcacheStore(tmp_path / "cache")
    store.set("k", b"v", 60)
    queries = []
    query = store._cache.get
    monkeypatch.setattr(store._cache, "get", lambda *a, **kw: queries.append(a) or query(*a, **kw))
    assert [store.get("k") for _ in range(5)] == [b"v"] * 5
    assert len(queries) == 1, "nothing was written: the first read's copy serves the rest"
    store.set("other", b"x", 60)
    assert store.get("k") == b"v"
    assert len(queries) == 2, "any write makes the next read query the database"
    store.close()


def test_a_write_in_another_process_is_seen_by_the_next_read(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    store = DiskcacheStore(directory)
    store.set("session", b"one", 60)
    assert store.get("session") == b"one"
    _write_in_another_process(directory, "store.set('session', b'two', 60)")
    assert store.get("session") == b"two"
    _write_in_another_process(directory, "store.delete('session')")
    assert store.get("session") is None
    store.set("session", b"three", 60)
    assert store.get("session") == b"three"
    _write_in_another_process(directory, "assert store.take('session') == b'three'")
    assert store.get("session") is None
    store.close()


def test_a_copy_is_not_used_past_the_entry_expiry(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache")
    store.set("k", b"v", 0.3)
    assert store.get("k") == b"v"
    time.sleep(0.4)
    assert store.get("k") is None, "expired without any write"
    store.close()


def test_generation_file_is_private(tmp_path: Path) -> None:
    store = DiskcacheStore(tmp_path / "cache")
    generation = tmp_path / "cache" / GENERATION_FILE
    assert mode_of(generation) == 0o600
    assert generation.is_file() and not generation.is_symlink()
    store.set("k", b"v", 60)
    assert [p.name for p in generation.parent.iterdir() if p.name.startswith(GENERATION_FILE)] == [
        GENERATION_FILE
    ], "no temporary file is left behind"
    store.close()


# -- the generation fails closed ---------------------------------------------------


def _replace(path: Path) -> None:
    fresh = path.with_name("fresh")
    fresh.write_bytes(b"\0" * 8)
    os.replace(fresh, path)


def _socket(path: Path) -> None:
    """A UNIX socket: not even root can open it as a file."""
    path.unlink()
    here = os.getcwd()
    os.chdir(path.parent)  # a relative name keeps within the length limit of socket paths
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(path.name)
    finally:
        os.chdir(here)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


TAMPERING: dict[str, Callable[[Path], None]] = {
    "removed": Path.unlink,
    "replaced": _replace,
    "truncated": lambda path: os.truncate(path, 0),
    "unreadable": lambda path: path.chmod(0),
    "directory": _directory,
    "socket": _socket,
}
IN_PROCESS = [kind for kind in TAMPERING if kind != "truncated"]  # old versions died of SIGBUS


@pytest.mark.parametrize("kind", IN_PROCESS)
def test_a_tampered_generation_hides_no_write_in_process(tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "cache"
    reader = DiskcacheStore(directory)
    reader.set("session", b"one", 60)
    assert reader.get("session") == b"one"  # a copy is made
    TAMPERING[kind](directory / GENERATION_FILE)
    assert reader.get("session") == b"one"
    writer = DiskcacheStore(directory)  # e.g. a worker started after the change
    writer.set("session", b"two", 60)
    assert reader.get("session") == b"two"
    writer.delete("session")
    assert reader.get("session") is None
    reader.set("session", b"three", 60)
    assert writer.get("session") == b"three"
    writer.close()
    reader.close()


_READER = """
import sys
from dash_oauth_otel.stores import DiskcacheStore
store = DiskcacheStore(sys.argv[1])
for line in sys.stdin:
    print(repr(store.get(line.strip())), flush=True)
store.close()
"""


class _Reader:
    """A store in another interpreter, answering ``get`` for each key written to it."""

    def __init__(self, directory: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _READER, str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def get(self, key: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(key + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        assert answer, f"the reader died: returncode {self.process.wait(10)}"
        return answer

    def finish(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        code = self.process.wait(30)
        self.process.stdout.close()
        return code


def _unprivileged() -> list[str]:
    """A command prefix without the root powers that ignore file modes (when root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_a_tampered_generation_hides_no_write_across_processes(tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "cache"
    store = DiskcacheStore(directory)
    store.set("session", b"one", 60)
    reader = _Reader(directory)
    try:
        assert reader.get("session") == "b'one'"  # a copy is made
        TAMPERING[kind](directory / GENERATION_FILE)
        assert reader.get("session") == "b'one'"  # read after the change: no SIGBUS
        _write_in_another_process(
            directory, "store.set('session', b'two', 60)", prefix=_unprivileged()
        )
        assert reader.get("session") == "b'two'"
        _write_in_another_process(directory, "store.delete('session')")
        assert reader.get("session") == "None"
    finally:
        code = reader.finish()
        store.close()
    assert code != -signal.SIGBUS, "the reader died of SIGBUS"
    assert code == 0


def test_an_unusable_generation_means_no_copies_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_generation, "RETRY_SECONDS", 0.0)  # retry on every read
    directory = tmp_path / "cache"
    path = directory / GENERATION_FILE
    DiskcacheStore(directory).close()
    _directory(path)
    (path / "keep").write_bytes(b"")  # a directory that nothing replaces
    caplog.set_level(logging.WARNING, logger="dash_oauth_otel")
    store = DiskcacheStore(directory)
    store.set("k", b"v", 60)
    queries = []
    query = store._cache.get
    monkeypatch.setattr(store._cache, "get", lambda *a, **kw: queries.append(a) or query(*a, **kw))
    assert [store.get("k") for _ in range(5)] == [b"v"] * 5
    assert len(queries) == 5, "without a generation every read queries the database"
    warnings = [r for r in caplog.records if "generation file" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].levelno == logging.WARNING
    _write_in_another_process(directory, "store.set('k', b'w', 60)")
    assert store.get("k") == b"w"
    (path / "keep").unlink()
    path.rmdir()
    store.get("k")  # puts a fresh file back
    assert path.is_file()
    queries.clear()
    assert [store.get("k") for _ in range(3)] == [b"w"] * 3
    assert len(queries) == 1, "copies are used again once the file is back"
    store.close()


def test_concurrent_writers_in_several_processes_each_advance_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes pass a turn through the store, reading it from their copies.

    A write that left the generation unchanged would leave the next process
    waiting on a stale copy; the file is also replaced and removed meanwhile.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    workers = importlib.import_module("stores_workers")
    directory = tmp_path / "cache"
    store = DiskcacheStore(directory)
    store.set("turn", b"0", 600)
    context = multiprocessing.get_context("spawn")
    count, rounds = 4, 40
    processes = [
        context.Process(target=workers.pass_the_turn, args=(str(directory), i, count, rounds))
        for i in range(count)
    ]
    for process in processes:
        process.start()
    path = directory / GENERATION_FILE
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
        with suppress(OSError):
            _replace(path)
        time.sleep(0.05)
        with suppress(OSError):
            path.unlink()
    for process in processes:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    assert [p.exitcode for p in processes] == [0] * count
    assert store.get("turn") == str(count * rounds).encode()
    store.close()
