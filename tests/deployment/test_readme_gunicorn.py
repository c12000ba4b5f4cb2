"""The README's integration block, run as written under ``gunicorn -w 4``."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.gunicorn import Gunicorn
from tests.gunicorn import free_port
from tests.gunicorn import start
from tests.idp.harness import login


def _gunicorn(idp, tmp_path: Path, **extra: str) -> Gunicorn:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client([f"{origin}/oauth/callback"])
    env = {
        # The default store lives in the host's temporary directory: this run's own.
        "TMPDIR": str(tmp_path),
        "README_ISSUER": idp.issuer,
        "README_CLIENT_ID": registered.client_id,
        "README_CLIENT_SECRET": registered.client_secret or "",
        "README_REDIRECT_URI": f"{origin}/oauth/callback",
        "DASH_OAUTH_SECRET_KEY": secrets.token_urlsafe(32),
        **extra,
    }
    return start(
        "tests.deployment.readme_app:server",
        port=port,
        env=env,
        log=tmp_path / "gunicorn.log",
        args=("--access-logfile", "-", "--access-logformat", "pid=%(p)s %(r)s %(s)s"),
    )


@pytest.fixture
def readme_deployment(idp, tmp_path) -> Iterator[tuple[str, Path]]:
    server = _gunicorn(idp, tmp_path)
    try:
        server.wait_until_serving()
        yield server.origin, server.log
    finally:
        server.stop()


def _refused_start(server: Gunicorn) -> str:
    """Wait for a server that must not come up to exit; return its log."""
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        pytest.fail("gunicorn kept running: " + server.output()[-2000:])
    assert server.process.returncode != 0
    return server.output()


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
    output = _refused_start(_gunicorn(idp, tmp_path, README_DROP_STATE_KEY="1"))
    assert "ConfigError" in output and "state_key" in output, output[-2000:]


def test_the_readme_block_with_its_placeholder_key_refuses_to_start(idp, tmp_path):
    """A reader who pastes a made-up key gets a ConfigError saying how to draw one."""
    placeholder = "at least 32 bytes of secret material, same on every worker"
    output = _refused_start(_gunicorn(idp, tmp_path, DASH_OAUTH_SECRET_KEY=placeholder))
    assert "ConfigError" in output and "secrets.token_urlsafe(32)" in output, output[-2000:]
