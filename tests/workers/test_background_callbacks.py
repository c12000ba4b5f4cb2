"""``current_user()`` inside Dash background callbacks, in a real browser.

The app (``tests/workers/background_app.py``) is behind login and has one
``background=True`` callback returning ``current_user().sub`` and the id of
the process that ran it.  Under ``DiskcacheManager`` the callback runs in a
process forked for the job; under ``CeleryManager`` it runs on a Celery worker
started by the test (Redis broker).  The user reaches the callback through
``dash.hooks.custom_data`` (namespace ``dash_oauth_otel``), claims only: the
Celery test also checks that no token crosses the broker.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import diskcache
from dash import CeleryManager
from dash import DiskcacheManager
from playwright.sync_api import Browser
from playwright.sync_api import expect

from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.browser.conftest import session_id
from tests.browser.conftest import sign_in_at_provider
from tests.workers.background_app import build
from tests.workers.background_app import make_celery
from tests.workers.flows import REDIS_HOST
from tests.workers.flows import REDIS_PORT
from tests.workers.flows import RedisMonitor
from tests.workers.flows import assert_absent
from tests.workers.flows import celery_worker
from tests.workers.flows import decoded_bodies
from tests.workers.flows import forget_queue
from tests.workers.flows import subprocess_env

DB = 12
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"
TIMEOUT = 30_000  # ms: a background job is polled every second


def _click_and_read(browser: Browser, running: RunningApp) -> tuple[str, str, str]:
    """Sign in as alice, click the button; return the answer, the job's pid and the session id."""
    context = browser.new_context()
    context.route("**/favicon.ico", lambda route: route.fulfill(status=404, body=""))
    try:
        page = context.new_page()
        page.goto(running.url + "/")
        sign_in_at_provider(page, "alice")
        page.wait_for_url(running.url + "/")
        button = page.locator("#bg-whoami")
        expect(button).to_be_visible(timeout=TIMEOUT)
        button.click()
        expect(page.locator("#bg-answer")).not_to_be_empty(timeout=TIMEOUT)
        expect(page.locator("#bg-pid")).not_to_be_empty(timeout=TIMEOUT)
        sid = session_id(context)
        return page.locator("#bg-answer").inner_text(), page.locator("#bg-pid").inner_text(), sid
    finally:
        context.close()


def test_current_user_in_a_diskcache_background_callback(idp, chromium, tmp_path, telemetry):
    cache = diskcache.Cache(str(tmp_path / "dash-jobs"))
    try:
        manager = DiskcacheManager(cache)

        def factory(client: Any, **options: Any) -> Any:
            return build(manager, client, **options)

        with serve_app(idp, factory=factory) as running:
            answer, pid, _sid = _click_and_read(chromium, running)
    finally:
        cache.close()
    assert answer == "alice"
    assert int(pid) != os.getpid()  # the job ran in a process of its own


def _celery_background(browser: Browser, idp: Any, tmp_path: Path) -> dict[str, Any]:
    """Click the button of the app served with ``CeleryManager``; what the test needs to check."""
    queue = f"dash-oauth-otel-bg-{uuid.uuid4().hex[:12]}"
    manager = CeleryManager(make_celery(URL, queue), expire=600)

    def factory(client: Any, **options: Any) -> Any:
        return build(manager, client, **options)

    env = subprocess_env(TEST_BG_WORKER="1", TEST_BG_CELERY_URL=URL, TEST_BG_QUEUE=queue)
    monitor = RedisMonitor(tmp_path / "redis-monitor.log")
    try:
        with (
            celery_worker(
                "tests.workers.background_app:celery_app",
                queue=queue,
                env=env,
                log=tmp_path / "bg-worker.log",
            ) as worker,
            serve_app(idp, factory=factory) as running,
        ):
            answer, pid, sid = _click_and_read(browser, running)
            token = running.module.sessions.load(sid).token
            worker_pid = worker.process.pid
    finally:
        monitor.stop()
        forget_queue(DB, queue)
    traffic = monitor.text()
    return {
        "answer": answer,
        "pid": int(pid),
        "worker_pid": worker_pid,
        "sid": sid,
        "token": token,
        "traffic": traffic,
        "bodies": "\n".join(decoded_bodies(traffic)),
    }


def test_current_user_in_a_celery_background_callback(idp, chromium, tmp_path, telemetry):
    run = _celery_background(chromium, idp, tmp_path)
    assert run["answer"] == "alice"
    assert run["pid"] == run["worker_pid"]  # --pool=solo: the job ran in the worker process
    # The user travelled as claims, in the module's custom_data namespace: no token
    # in the job's message or in its result.
    assert '"dash_oauth_otel"' in run["bodies"] and '"alice"' in run["bodies"]
    token = run["token"]
    assert_absent(
        [token.access_token, token.refresh_token, token.id_token],
        broker_traffic=run["traffic"],
        message_bodies=run["bodies"],
    )


def test_the_session_cookie_does_not_cross_the_broker_with_a_background_job(
    idp, chromium, tmp_path, telemetry
):
    # Dash copies the request's cookies and headers into the callback context it
    # ships with a background job; the app's session id is a bearer credential.
    run = _celery_background(chromium, idp, tmp_path)
    assert run["answer"] == "alice"
    assert_absent([run["sid"]], broker_traffic=run["traffic"], message_bodies=run["bodies"])
