"""A real ``gunicorn`` serving a test app on loopback, for the multi-process tests.

:func:`serving` starts it with the project root importable, waits until the
module's status route answers, and stops it afterwards; a start that fails
shows the server's log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

__all__ = ["ROOT", "Gunicorn", "free_port", "serving", "start"]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gunicorn:
    """A started server: where it listens, its process and its log file."""

    origin: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the server has logged so far."""
        return self.log.read_text(errors="replace")

    def wait_until_serving(self, *, timeout: float = 40.0) -> None:
        """Return once ``oauth/status`` answers; fail the test with the log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail("gunicorn exited: " + self.output()[-3000:])
            try:
                httpx.get(f"{self.origin}/oauth/status", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        pytest.fail("gunicorn did not start: " + self.output()[-3000:])

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the server (and its workers)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=timeout)


def start(
    app: str,
    *,
    port: int,
    env: Mapping[str, str],
    log: Path,
    workers: int = 4,
    args: Sequence[str] = (),
) -> Gunicorn:
    """Start ``gunicorn -w <workers> <app>`` on ``127.0.0.1:<port>`` (not waiting for it)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "-w", str(workers)),
                *("-b", f"127.0.0.1:{port}", *args, app),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Gunicorn(f"http://127.0.0.1:{port}", process, log)


@contextmanager
def serving(
    app: str,
    *,
    port: int,
    env: Mapping[str, str],
    log: Path,
    workers: int = 4,
    args: Sequence[str] = (),
) -> Iterator[Gunicorn]:
    """A started server that answers; stopped when the block ends."""
    server = start(app, port=port, env=env, log=log, workers=workers, args=args)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()
