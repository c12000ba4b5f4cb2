"""The README's integration block, run as written under ``gunicorn -w 4``."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.idp.harness import login

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gunicorn(idp, tmp_path: Path, **extra: str) -> tuple[str, subprocess.Popen[bytes], Path]:
    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client([f"{origin}/oauth/callback"])
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # The default store lives in the host's temporary directory: this run's own.
        "TMPDIR": str(tmp_path),
        "README_ISSUER": idp.issuer,
        "README_CLIENT_ID": registered.client_id,
        "README_CLIENT_SECRET": registered.client_secret or "",
        "README_REDIRECT_URI": f"{origin}/oauth/callback",
        "DASH_OAUTH_SECRET_KEY": secrets.token_urlsafe(32),
        **extra,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "4",
                "-b",
                f"127.0.0.1:{port}",
                "--access-logfile",
                "-",
                "--access-logformat",
                "pid=%(p)s %(r)s %(s)s",
                "tests.deployment.readme_app:server",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return origin, process, log


@pytest.fixture
def readme_deployment(idp, tmp_path) -> Iterator[tuple[str, Path]]:
    origin, process, log = _gunicorn(idp, tmp_path)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{origin}/oauth/status", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start: " + log.read_text())
        yield origin, log
    finally:
        process.terminate()
        process.wait(timeout=20)


def _one_login(origin: str, username: str) -> dict:
    with httpx.Client(base_url=origin, timeout=30) as http:
        start = http.get("/oauth/login?next=/")
        landed = login(start.headers["location"], username=username).deliver(http)
        assert landed.status_code == 303, landed.text[:400]
        answers = [http.get("/oauth/status").json() for _ in range(8)]
        assert all(a["authenticated"] for a in answers), answers
        return answers[-1]["user"]


def test_the_readme_block_serves_logins_on_four_workers(readme_deployment):
    origin, log = readme_deployment
    users = [f"reader{i}" for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(lambda u: _one_login(origin, u), users))
    assert [u["sub"] for u in seen] == users
    # What the README promises current_user() shows, with its defaults.
    assert all(u["name"] and u["email"] for u in seen), seen
    callbacks = [line for line in log.read_text().splitlines() if "/oauth/callback" in line]
    assert len(callbacks) == len(users) and all(line.endswith(" 303") for line in callbacks)
    pids = {line.split()[0] for line in log.read_text().splitlines() if line.startswith("pid=")}
    assert len(pids) == 4, pids


def test_the_readme_block_without_its_state_key_refuses_to_start(idp, tmp_path):
    """A random per-process key would fail every login served by another worker: a
    ``ConfigError`` at start says so instead."""
    _origin, process, log = _gunicorn(idp, tmp_path, README_DROP_STATE_KEY="1")
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("gunicorn kept running without a state key: " + log.read_text()[-2000:])
    output = log.read_text()
    assert process.returncode != 0
    assert "ConfigError" in output and "state_key" in output, output[-2000:]


def test_the_readme_block_with_its_placeholder_key_refuses_to_start(idp, tmp_path):
    """A reader who pastes a made-up key gets a ConfigError saying how to draw one."""
    placeholder = "at least 32 bytes of secret material, same on every worker"
    _origin, process, log = _gunicorn(idp, tmp_path, DASH_OAUTH_SECRET_KEY=placeholder)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("gunicorn started with a placeholder key: " + log.read_text()[-2000:])
    output = log.read_text()
    assert process.returncode != 0
    assert "ConfigError" in output and "secrets.token_urlsafe(32)" in output, output[-2000:]
