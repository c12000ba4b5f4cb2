"""Races around token work in worker processes, and what the module guarantees.

* a logout while a refresh is in flight: the session stays logged out and the
  late tokens are revoked;
* two refreshes of one session from two web processes (gunicorn) at once:
  one provider call;
* a worker killed mid-task: a typed error with a phase, a consistent session,
  and the next task runs on a new pool process;
* a worker slower than ``worker_timeout``: a typed error, audited, and its
  late result revoked;
* ``examples/async_workers.py`` started as documented, with a login.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthToken
from dash_oauth_otel import introspect_token
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.workers import ProcessPoolBackend
from dash_oauth_otel.workers import WorkerTimeoutError
from examples.basic_app import create_app
from tests.adapter.conftest import SECRET
from tests.adapter.conftest import serve_app
from tests.cookies import cookie_name
from tests.cookies import session_cookie
from tests.logout import is_logout_answer
from tests.workers.conftest import CLIENT_PATH
from tests.workers.conftest import WORKER_INIT
from tests.workers.conftest import worker_factory
from tests.workers.conftest import worker_spans
from tests.workers.flows import Service
from tests.workers.flows import async_login
from tests.workers.flows import free_port
from tests.workers.flows import read_jsonl
from tests.workers.flows import start_login
from tests.workers.flows import subprocess_env
from tests.workers.flows import wait_for
from tests.workers.flows import wait_for_login
from tests.workers.flows import waiting_handle

CATALOGUED_LOGIN_PHASE = "callback.worker"  # the phase of dash_oauth_otel.callback.worker


def _factory(backend: ProcessPoolBackend, monkeypatch: Any, *, worker_timeout: float) -> Any:
    """Like ``worker_factory``, with the module's ``worker_timeout`` set."""

    def factory(client: Any, **options: Any) -> Any:
        for name, value in {
            "TEST_ISSUER": client.provider.issuer,
            "TEST_CLIENT_ID": client.client_id,
            "TEST_CLIENT_SECRET": client.client_secret or "",
            "TEST_REDIRECT_URI": client.redirect_uri,
            "TEST_SECRET": SECRET,
        }.items():
            monkeypatch.setenv(name, value)  # read by the pool's workers
        return create_app(
            client,
            workers=backend,
            client_path=CLIENT_PATH,
            worker_init=WORKER_INIT,
            worker_timeout=worker_timeout,
            **options,
        )

    return factory


def _warm(module: Any, span_file: Path) -> int:
    """Run one task in the module's pool (a harmless introspection); return the worker's pid."""
    dispatcher = module.dispatcher
    probe = {"token": OAuthToken(access_token="not-a-token").to_dict(), "which": "access"}
    pending = dispatcher.submit(module.client, "introspect", probe)
    dispatcher.outcome(module.client, "introspect", pending, timeout=60)
    bridges = [s for s in worker_spans(span_file) if s["name"] == spans.TOKEN_INTROSPECT_WORKER]
    pid: int = bridges[-1]["pid"]
    return pid


def _session(http: httpx.Client, module: Any) -> Any:
    return module.sessions.load(session_cookie(http.cookies))


# -- logout while a refresh is in flight ------------------------------------------------


def test_logout_while_a_refresh_is_in_flight_keeps_the_session_logged_out(
    idp, pool, span_file, telemetry, monkeypatch
):
    factory = worker_factory(pool)
    with (
        serve_app(idp, factory=factory, access_token_ttl=6, refresh_lead_seconds=3) as running,
        running.http() as http,
    ):
        module = running.module
        landed, _ = async_login(http)
        assert landed.status_code == 303
        record = _session(http, module)
        csrf = http.get("/oauth/status").json()["csrf_token"]

        late: list[dict[str, Any]] = []
        outcome = module.dispatcher.outcome

        def keep(client: Any, operation: str, pending: Any, timeout: Any = None, **kw: Any) -> Any:
            result = outcome(client, operation, pending, timeout, **kw)
            if operation == "refresh":
                late.append(result)
            return result

        monkeypatch.setattr(module.dispatcher, "outcome", keep)

        time.sleep(max(0.0, record.token.expires_at - 2.5 - time.time()))
        idp.delay_token_endpoint(ms=2500)
        # Inside the lead: this request starts the refresh in the background...
        assert http.get("/oauth/status").json()["authenticated"] is True
        time.sleep(0.5)
        # ...and the user logs out while the provider holds it.
        out = http.post(
            "/oauth/logout", data={"csrf_token": csrf}, headers={"Origin": running.origin}
        )
        assert is_logout_answer(out)
        assert http.get("/oauth/status").json()["authenticated"] is False

        wait_for(lambda: telemetry.events("audit_stale_result_revoked"), what="the late result")
        stale = telemetry.events("audit_stale_result_revoked")
        assert len(stale) == 1
        assert stale[0]["operation"] == "refresh"
        assert stale[0]["reason"] == "session_ended"
        assert stale[0]["session_id_digest"] == record.sid_digest
        # The late tokens are revoked (refresh and access), and nothing came back.
        assert late and len(telemetry.events("audit_token_refresh")) == 1
        wait_for(
            lambda: len(telemetry.events("audit_token_revocation")) >= 4,
            what="the revocations of the old and the late tokens",
        )
        newer = OAuthToken.from_dict(late[0]["token"])
        assert newer.refresh_token != record.token.refresh_token
        for which in ("refresh", "access"):
            assert introspect_token(running.client, newer, which).active is False
        assert module.sessions.load(record.sid) is None
        assert http.get("/oauth/status").json()["authenticated"] is False
        assert not telemetry.events("audit_session_started")[1:]


# -- two refreshes from two web processes -------------------------------------------------


def test_two_web_processes_refresh_one_session_with_one_provider_call(idp, tmp_path, span_file):
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client(
        [f"{origin}/oauth/callback"],
        access_token_ttl=3,
        post_logout_redirect_uris=[f"{origin}/oauth/signed-out"],
    )
    audit_file = tmp_path / "audit.jsonl"
    env = subprocess_env(
        TEST_ISSUER=idp.issuer,
        TEST_CLIENT_ID=registered.client_id,
        TEST_CLIENT_SECRET=registered.client_secret or "",
        TEST_REDIRECT_URI=f"{origin}/oauth/callback",
        TEST_SECRET=SECRET,
        TEST_STORE_DIR=str(tmp_path / "store"),
        TEST_SPAN_FILE=str(span_file),
        TEST_AUDIT_FILE=str(audit_file),
    )
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "3",
        "tests.workers.gunicorn_app:create_server()",
    ]
    with (
        Service(
            gunicorn,
            env=env,
            log=tmp_path / "gunicorn.log",
            ready=lambda out: out.count("Booting worker") >= 2,
        ) as server,
        httpx.Client(base_url=origin, timeout=30) as http,
    ):
        wait_for(lambda: _answers(origin), what="gunicorn")
        landed, _ = async_login(http)
        assert landed.status_code == 303, landed.text[:300]
        cookie = session_cookie(http.cookies)
        # Let the access token expire: the next requests must wait for a new one.
        time.sleep(3.3)
        idp.delay_token_endpoint(ms=1500, times=2)
        answers: list[dict[str, Any]] = []

        def ask() -> None:
            with httpx.Client(base_url=origin, timeout=30) as browser:
                browser.cookies.set(cookie_name(http.cookies, "dash_oauth_session"), cookie)
                answer = browser.get("/pid")
                assert answer.status_code == 200, answer.text[:300]
                answers.append(answer.json())

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=40)
        assert len(answers) == 2, server.output()[-3000:]
        # Two web processes served the two requests; both got the refreshed session.
        assert len({a["pid"] for a in answers}) == 2, answers
        assert all(a["authenticated"] and a["epoch"] == 1 for a in answers), answers
        assert http.get("/pid").json()["epoch"] == 1
    refreshes = [e for e in read_jsonl(audit_file) if e["type"] == "audit_token_refresh"]
    assert len(refreshes) == 1, refreshes
    bridges = [s for s in worker_spans(span_file) if s["name"] == spans.REFRESH_WORKER]
    assert len(bridges) == 1
    assert bridges[0]["attributes"]["dash.main_process_id"] in {a["pid"] for a in answers}
    assert not [e for e in read_jsonl(audit_file) if e["type"] == "audit_session_ended"]


def _answers(origin: str) -> bool:
    try:
        return httpx.get(f"{origin}/oauth/status", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# -- a worker killed mid-task ---------------------------------------------------------------


def test_a_worker_killed_during_an_exchange_gives_a_typed_error(idp, pool, span_file, telemetry):
    with serve_app(idp, factory=worker_factory(pool)) as running:
        module = running.module
        victim = _warm(module, span_file)
        with running.http() as http:
            result = start_login(http)
            idp.delay_token_endpoint(ms=3000)
            handle = waiting_handle(result.deliver(http))
            time.sleep(0.8)  # the exchange is waiting on the provider now
            os.kill(victim, signal.SIGKILL)
            assert wait_for_login(http, handle) == "error"
            page = http.get(f"/oauth/callback?complete={handle}")
            assert page.status_code == 502 and "transport_error" in page.text
            # The session is consistent: none was created, none is half-made.
            assert http.get("/oauth/status").json()["authenticated"] is False
            assert session_cookie(http.cookies) is None
            assert not telemetry.events("audit_session_started")
        failed = telemetry.events("audit_login_failed")
        assert len(failed) == 1
        assert failed[0]["error_class"] == "TransportError"
        assert failed[0]["reason"] == "worker_failed"
        assert failed[0]["phase"]

        # The next task runs on a new pool process.
        idp.reset_faults()
        with running.http() as http:
            landed, _ = async_login(http)
            assert landed.status_code == 303
            assert http.get("/oauth/status").json()["authenticated"] is True
    bridge = [s for s in worker_spans(span_file) if s["name"] == spans.CALLBACK_WORKER]
    assert [s["pid"] for s in bridge] != [] and bridge[-1]["pid"] != victim
    # The phase names the catalogued step where it failed (the callback's worker span).
    assert failed[0]["phase"] == CATALOGUED_LOGIN_PHASE


# -- worker timeouts ---------------------------------------------------------------------------


def test_a_worker_slower_than_the_timeout_gives_a_typed_error(
    idp, pool, span_file, telemetry, monkeypatch
):
    with serve_app(idp, factory=_factory(pool, monkeypatch, worker_timeout=1.0)) as running:
        module = running.module
        _warm(module, span_file)
        # Directly: the dispatcher raises the typed error with its phase.
        idp.delay_token_endpoint(ms=2500)
        token = OAuthToken(access_token="a", refresh_token="not-a-refresh-token")
        with pytest.raises(WorkerTimeoutError) as raised:
            module.dispatcher.run(module.client, "refresh", {"token": token.to_dict()})
        assert raised.value.error == "worker_timeout"
        assert raised.value.phase == "refresh.worker"
        assert raised.value.reason == "worker_timeout"
        time.sleep(2.0)  # let the pool's worker finish the slow task

        # Through a login: the error page and the audit event say what happened.
        idp.delay_token_endpoint(ms=2500)
        with running.http() as http:
            result = start_login(http)
            handle = waiting_handle(result.deliver(http))
            assert wait_for_login(http, handle) == "error"
            page = http.get(f"/oauth/callback?complete={handle}")
            assert page.status_code in (400, 502, 504)
            assert http.get("/oauth/status").json()["authenticated"] is False
        failed = telemetry.events("audit_login_failed")
        assert len(failed) == 1
        assert failed[0]["reason"] == "worker_timeout"
        assert failed[0]["trace_id"]
        # The error keeps its type through the async login: the audit event and
        # the page name it (not the generic DashOAuthError / dash_oauth_error).
        assert failed[0]["error_class"] == "WorkerTimeoutError"
        assert "<code id=dash-oauth-error>worker_timeout</code>" in page.text
        assert failed[0]["phase"] == CATALOGUED_LOGIN_PHASE


def test_a_login_answered_after_the_timeout_is_revoked(
    idp, pool, span_file, telemetry, monkeypatch
):
    with serve_app(idp, factory=_factory(pool, monkeypatch, worker_timeout=1.0)) as running:
        _warm(running.module, span_file)
        idp.delay_token_endpoint(ms=2000)
        with running.http() as http:
            result = start_login(http)
            handle = waiting_handle(result.deliver(http))
            assert wait_for_login(http, handle) == "error"
        # The worker still gets tokens from the provider (and verifies them) after the
        # main process gave up.
        wait_for(
            lambda: [s for s in worker_spans(span_file) if s["name"] == spans.CALLBACK_WORKER],
            what="the late exchange",
        )
        assert [s for s in worker_spans(span_file) if s["name"] == spans.TOKEN_VERIFY]
        time.sleep(1.0)
        # A late success never lands, and its tokens must not stay active.
        stale = telemetry.events("audit_stale_result_revoked")
        assert [e["operation"] for e in stale] == ["login"], telemetry.event_types()


# -- examples/async_workers.py ---------------------------------------------------------------


def test_the_async_workers_example_signs_in(idp, tmp_path):
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp.register_client(
        [f"{origin}/oauth/callback"], post_logout_redirect_uris=[f"{origin}/oauth/signed-out"]
    )
    env = subprocess_env(
        DASH_OAUTH_ISSUER=idp.issuer,
        DASH_OAUTH_CLIENT_ID=registered.client_id,
        DASH_OAUTH_CLIENT_SECRET=registered.client_secret or "",
        DASH_OAUTH_REDIRECT_URI=f"{origin}/oauth/callback",
        DASH_OAUTH_SECRET_KEY=SECRET,
        DASH_OAUTH_ALLOW_INSECURE_LOOPBACK="1",
        DASH_OAUTH_WORKERS="1",
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="async-workers-example",
        TMPDIR=str(tmp_path),
    )
    with (
        Service(
            [sys.executable, "-m", "examples.async_workers"],
            env=env,
            log=tmp_path / "example.log",
            ready=lambda out: "Running on" in out,
        ) as web,
        httpx.Client(base_url=origin, timeout=30) as http,
    ):
        landed, _ = async_login(http, next_path="/reports")
        assert landed.status_code == 303 and landed.headers["location"] == "/reports"
        status = http.get("/oauth/status").json()
        assert status["authenticated"] and status["user"]["sub"] == "alice"
        # The pool's worker set up its SDK through worker_init and traced the exchange.
        wait_for(lambda: spans.CALLBACK_WORKER in web.output(), what="the worker's span")
        out = http.post(
            "/oauth/logout", data={"csrf_token": status["csrf_token"]}, headers={"Origin": origin}
        )
        assert is_logout_answer(out)
        assert http.get("/oauth/status").json()["authenticated"] is False
    assert "async-workers-example" in web.output()


class _SlowTakes(MemoryStore):
    """A store whose ``take`` of an async-login record returns late, as over a slow network.

    It counts the takes that found a login record.
    """

    def __init__(self) -> None:
        super().__init__()
        self.login_records_taken = 0

    def take(self, key: str) -> bytes | None:
        value = super().take(key)
        if key.startswith("login:"):
            self.login_records_taken += value is not None
            time.sleep(0.05)
        return value


def test_a_finished_async_login_is_never_lost_to_a_polling_tab(idp, pool, monkeypatch):
    """Tabs ask to complete a login while its worker is still exchanging the code.

    Eight threads open ``oauth/callback?complete=<handle>`` over and over while
    the provider holds the token request; the worker's answer lands in the
    middle of that (the store answers its takes late, widening any window
    between taking a record and writing it back).  Exactly one request gets the
    session: no poll takes the pending record and writes it back over the
    worker's answer.
    """
    factory = _factory(pool, monkeypatch, worker_timeout=30.0)
    store = _SlowTakes()
    with (
        serve_app(idp, factory=factory, client_options={"state_store": store}) as running,
        running.http() as http,
    ):
        idp.delay_token_endpoint(ms=1500)
        result = start_login(http)
        handle = waiting_handle(result.deliver(http))
        cookies = dict(http.cookies.items())
        outcomes: list[int] = []
        stop = threading.Event()

        def poll() -> None:
            with httpx.Client(base_url=running.origin, timeout=30, cookies=cookies) as tab:
                deadline = time.monotonic() + 20
                while not stop.is_set() and time.monotonic() < deadline:
                    answer = tab.get(f"/oauth/callback?complete={handle}")
                    outcomes.append(answer.status_code)
                    if answer.status_code == 303:
                        stop.set()

        threads = [threading.Thread(target=poll) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert outcomes.count(303) == 1, outcomes
    # Only the finished record was ever taken: pending ones were only looked at.
    assert store.login_records_taken == 1
