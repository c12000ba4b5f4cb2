"""The module under ``gunicorn -w 4``: every piece of login state is in the shared store."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dash_oauth_otel.stores import DiskcacheStore
from dash_oauth_otel.stores._generation import GENERATION_FILE
from tests.adapter.conftest import SECRET
from tests.cookies import session_cookie
from tests.gunicorn import free_port
from tests.gunicorn import serving
from tests.idp.harness import login
from tests.idp.harness import logout


@pytest.fixture(params=["diskcache", "redis"])
def gunicorn_app(request, idp, tmp_path):
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client(
        [f"{origin}/oauth/callback"],
        post_logout_redirect_uris=[f"{origin}/oauth/signed-out"],
        backchannel_logout_uri=f"{origin}/oauth/backchannel-logout",
        backchannel_logout_session_required=True,
    )
    env = {
        "TEST_ISSUER": idp.issuer,
        "TEST_CLIENT_ID": registered.client_id,
        "TEST_CLIENT_SECRET": registered.client_secret or "",
        "TEST_REDIRECT_URI": f"{origin}/oauth/callback",
        "TEST_SECRET": SECRET,
        "TEST_STORE_DIR": str(tmp_path / "store"),
    }
    if request.param == "redis":
        env["TEST_REDIS_NAMESPACE"] = f"test-gunicorn-{uuid.uuid4().hex}"
    with serving(
        "tests.adapter.gunicorn_app:server",
        port=port,
        env=env,
        log=tmp_path / "gunicorn.log",
        args=("--access-logfile", "-"),
    ) as server:
        yield origin, server.process


def _one_login(origin: str, username: str) -> tuple[str, set[str]]:
    with httpx.Client(base_url=origin, timeout=30) as http:
        start = http.get("/oauth/login?next=/done")
        landed = login(start.headers["location"], http_client=http, username=username).deliver(http)
        assert landed.status_code == 303, landed.text[:500]
        subjects = set()
        for _ in range(8):  # spread over the workers
            status = http.get("/oauth/status").json()
            assert status["authenticated"], status
            subjects.add(status["user"]["sub"])
        return username, subjects


def test_concurrent_logins_across_four_workers(gunicorn_app):
    origin, _process = gunicorn_app
    users = [f"user{i}" for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda u: _one_login(origin, u), users))
    # Every login succeeded and no session was ever seen as another user's.
    assert all(subjects == {user} for user, subjects in results)


def test_sessions_survive_a_worker_restart(gunicorn_app):
    origin, process = gunicorn_app
    with httpx.Client(base_url=origin, timeout=30) as http:
        start = http.get("/oauth/login")
        login(start.headers["location"], http_client=http).deliver(http)
        assert http.get("/oauth/status").json()["authenticated"]
        process.send_signal(1)  # SIGHUP: gunicorn replaces every worker
        time.sleep(3)
        for _ in range(8):
            assert http.get("/oauth/status").json()["authenticated"]


def _every_worker(http: httpx.Client) -> dict[int, bool]:
    """``/pid`` until all four workers answered: pid -> whether it saw the session."""
    seen: dict[int, bool] = {}
    for _ in range(400):
        answer = http.get("/pid").json()
        seen.setdefault(answer["pid"], answer["authenticated"])
        assert seen[answer["pid"]] == answer["authenticated"], answer
        if len(seen) == 4:
            return seen
    pytest.fail(f"only {len(seen)} workers answered")


def test_back_channel_logout_ends_the_session_in_every_worker(gunicorn_app, idp):
    origin, _process = gunicorn_app
    with httpx.Client(base_url=origin, timeout=30) as http:
        start = http.get("/oauth/login")
        login(start.headers["location"], http_client=http).deliver(http)
        assert set(_every_worker(http).values()) == {True}
        # The user signs out at the provider, which POSTs a logout token to one worker.
        logout(idp.endpoint("end_session"), http_client=http)
        assert set(_every_worker(http).values()) == {False}
        assert http.get("/oauth/status").json()["authenticated"] is False


def _replace_file(path: Path) -> None:
    fresh = path.with_name("fresh")
    fresh.write_bytes(b"\0" * 8)
    os.replace(fresh, path)


def _truncate_file(path: Path) -> None:
    os.truncate(path, 0)


def _deaths(log: Path) -> list[str]:
    """Gunicorn's lines about workers that died (a signal such as SIGBUS, or an exit)."""
    return re.findall(r".*Worker \(pid:\d+\) (?:was sent \w+|exited).*", log.read_text())


@pytest.mark.parametrize("gunicorn_app", ["diskcache"], indirect=True)
@pytest.mark.parametrize("change", [_replace_file, _truncate_file], ids=["replaced", "truncated"])
def test_a_changed_generation_file_hides_no_ended_session(gunicorn_app, tmp_path, change):
    """Every worker holds a copy of the session; the generation file is then replaced
    (or truncated) and the session ended: every worker refuses it, and none died.

    A replaced file is followed by a delete from this process (a store opened after
    the change, like a restarted worker), a truncated one by a logout at the app.
    """
    origin, _process = gunicorn_app
    directory = tmp_path / "store"
    with httpx.Client(base_url=origin, timeout=30) as http:
        start = http.get("/oauth/login")
        login(start.headers["location"], http_client=http).deliver(http)
        before = _every_worker(http)
        assert set(before.values()) == {True}
        change(directory / GENERATION_FILE)
        assert _every_worker(http) == before, "the session is still valid, in the same workers"
        signed_in = httpx.Cookies(http.cookies)
        if change is _replace_file:
            sid = session_cookie(http.cookies)
            assert sid is not None
            store = DiskcacheStore(directory)
            key = "session:" + hashlib.sha256(sid.encode()).hexdigest()
            assert store.take(key) is not None
            store.close()
        else:
            csrf = http.get("/oauth/status").json()["csrf_token"]
            assert http.post("/oauth/logout", data={"csrf_token": csrf}).status_code == 200
    # The cookies from before the end: a browser that did not take part in it.
    with httpx.Client(base_url=origin, timeout=30, cookies=signed_in) as probe:
        after = _every_worker(probe)
    assert after == dict.fromkeys(before, False), "every worker refuses the ended session"
    assert not _deaths(tmp_path / "gunicorn.log")
