"""Anonymous floods against a real app under ``gunicorn -w 2``: the work they cost is bounded.

For each surface a stranger can reach without a session (``GET`` and ``HEAD``
of ``oauth/login``; the callback ``POST`` with no state, a garbage state and
one real state reused; the callback ``GET`` under ``SameSite=Strict``; a
logout without CSRF token; the status), ``FLOOD_REQUESTS`` requests without
cookies (default 5,000; the whole file takes under three minutes) are sent
from 16 threads, with the real ``DiskcacheStore`` and ``RedisStore``.  Then:

* no answer is a 5xx;
* the records the flood added to the store (counted in the store itself) stay
  within the bound documented in ``vignettes/security.md``;
* the provider received at most the bounded number of PAR and token requests
  (counted at the provider);
* a real user's login, run during the flood, succeeds.

Set ``FLOOD_REPORT`` to a file path to append the measured numbers (JSON lines).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel import RedisStore
from dash_oauth_otel.adapter import ModuleOptions
from tests.adapter.conftest import SECRET
from tests.browser.conftest import ARTIFACTS
from tests.browser.conftest import expect_signed_in
from tests.browser.conftest import sign_in_at_provider
from tests.gunicorn import free_port
from tests.gunicorn import start
from tests.idp.harness import TestProvider
from tests.idp.harness import login

REQUESTS = int(os.environ.get("FLOOD_REQUESTS", "5000"))
THREADS = 16
WORKERS = 2
LOGIN_RATE, LOGIN_BURST = ModuleOptions().login_rate_per_second, ModuleOptions().login_burst
"""The documented defaults of ``login_rate_per_second`` and ``login_burst``."""
LOGIN_RECORD_BYTES = 2048
"""Largest login-state or pending-index record (documented in vignettes/security.md)."""
BRIDGE_RECORD_BYTES = 32768
"""Largest ``form_post`` bridge record (the spec parameters at their size limits, sealed)."""
USER_RECORDS, USER_BYTES = 8, 32768
"""What the real user's own login stores (login state, index, bridge, session)."""


@dataclass
class FloodApp:
    origin: str
    issuer: str
    store: DiskcacheStore | RedisStore
    kind: str
    binding_cookie: str


@pytest.fixture(scope="module", params=["diskcache", "redis"])
def flood_app(request, idp_server: TestProvider, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"flood-{request.param}")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    registered = idp_server.register_client([f"{origin}/oauth/callback"])
    env = {
        "TEST_ISSUER": idp_server.issuer,
        "TEST_CLIENT_ID": registered.client_id,
        "TEST_CLIENT_SECRET": registered.client_secret or "",
        "TEST_REDIRECT_URI": f"{origin}/oauth/callback",
        "TEST_SECRET": SECRET,
        "TEST_STORE_DIR": str(tmp / "store"),
    }
    store: DiskcacheStore | RedisStore
    if request.param == "redis":
        namespace = f"test-flood-{uuid.uuid4().hex}"
        env["TEST_REDIS_NAMESPACE"] = namespace
        store = RedisStore.from_url("redis://127.0.0.1:6379/0", namespace=namespace)
    else:
        store = DiskcacheStore(tmp / "store")
    server = start(
        "tests.reliability.flood_app:server",
        port=port,
        env=env,
        log=tmp / "gunicorn.log",
        workers=WORKERS,
    )
    try:
        server.wait_until_serving()
        # The binding cookie's name, from a first login start.
        first = httpx.get(f"{origin}/oauth/login", timeout=10)
        name = next(c.split("=", 1)[0] for c in first.headers.get_list("set-cookie"))
        time.sleep(1.0 / LOGIN_RATE)  # give the token back
        yield FloodApp(origin, idp_server.issuer, store, request.param, name)
    finally:
        server.stop()
        if request.param == "redis":
            for key in list(store.scan("")):
                store.delete(key)


def _snapshot(store: DiskcacheStore | RedisStore) -> dict[str, int]:
    sizes = {}
    for key in store.scan(""):
        value = store.get(key)
        if value is not None:
            sizes[key] = len(value)
    return sizes


# -- the surfaces ----------------------------------------------------------------------

Request = tuple[str, str, dict[str, Any]]


def _padding(count: int) -> dict[str, str]:
    return {f"p{i}": "x" * 1000 for i in range(count)}


def _real_state(app: FloodApp) -> dict[str, str]:
    """A stranger's own real login, stopped at the provider: a real state and iss."""
    with httpx.Client(base_url=app.origin, timeout=30) as http:
        start = http.get("/oauth/login")
        result = login(start.headers["location"], http_client=http)
        return dict(result.params)


SURFACES: dict[str, Callable[[FloodApp], Callable[[int], Request]]] = {
    "login_get": lambda app: lambda i: ("GET", "/oauth/login", {}),
    "login_head": lambda app: lambda i: ("HEAD", "/oauth/login", {}),
    "post_no_state": lambda app: (
        lambda i: (
            "POST",
            "/oauth/callback",
            {"data": {"code": "c" * 4000, "iss": app.issuer, **_padding(13)}},
        )
    ),
    "post_garbage_state": lambda app: (
        lambda i: (
            "POST",
            "/oauth/callback",
            {"data": {"state": secrets.token_urlsafe(600), "code": "c" * 4000, **_padding(13)}},
        )
    ),
    "post_real_state_reused": lambda app: (
        lambda params: (
            lambda i: (
                "POST",
                "/oauth/callback",
                {"data": {**params, "code": "c" * 4000, **_padding(13)}},
            )
        )
    )(_real_state(app)),
    "strict_get": lambda app: (
        lambda i: (
            "GET",
            "/oauth/callback",
            {
                "params": {
                    "state": secrets.token_urlsafe(200),
                    "code": "c" * 3000,
                    "iss": app.issuer,
                }
            },
        )
    ),
    "logout_no_csrf": lambda app: (
        lambda i: (
            "POST",
            "/oauth/logout",
            {
                "data": {"csrf_token": "wrong"},
                "headers": {"Cookie": f"{app.binding_cookie}={secrets.token_urlsafe(32)}"},
            },
        )
    ),
    "status": lambda app: lambda i: ("GET", "/oauth/status", {}),
}
LOGIN_SURFACES = {"login_get"}


def _flood(app: FloodApp, make: Callable[[int], Request]) -> Counter[int]:
    local = threading.local()

    def send(i: int) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=app.origin, timeout=30)
        method, path, kwargs = make(i)
        response = client.request(method, path, **kwargs)
        client.cookies.clear()  # every request is a stranger's: no cookies kept
        return response.status_code

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return Counter(pool.map(send, range(REQUESTS)))


def _real_user(app: FloodApp, outcome: dict[str, Any]) -> None:
    """A real user signs in during the flood (following a 429's Retry-After, as its page does)."""
    try:
        with httpx.Client(base_url=app.origin, timeout=30) as http:
            deadline = time.monotonic() + 60
            start = http.get("/oauth/login?next=/done")
            while start.status_code == 429 and time.monotonic() < deadline:
                outcome["retries"] = outcome.get("retries", 0) + 1
                time.sleep(float(start.headers.get("Retry-After", "1")))
                start = http.get("/oauth/login?next=/done")
            posted = login(start.headers["location"], http_client=http).deliver(http)
            landed = http.get(posted.headers["location"])
            outcome["landed"] = landed.headers.get("location")
            outcome["authenticated"] = http.get("/oauth/status").json()["authenticated"]
    except Exception as exc:  # reported by the assertion below
        outcome["error"] = repr(exc)


def _report(record: dict[str, Any]) -> None:
    path = os.environ.get("FLOOD_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(record) + "\n")


@pytest.mark.parametrize("surface", list(SURFACES))
def test_anonymous_flood_costs_bounded_work(flood_app, idp_server, surface):
    make = SURFACES[surface](flood_app)
    before = _snapshot(flood_app.store)
    idp_server.reset_received()
    user: dict[str, Any] = {}
    started = time.monotonic()
    user_thread = threading.Thread(target=_real_user, args=(flood_app, user))
    flood = threading.Thread(target=lambda: user.setdefault("statuses", _flood(flood_app, make)))
    flood.start()
    time.sleep(0.3)  # the flood is under way
    user_thread.start()
    flood.join()
    user_thread.join()
    elapsed = time.monotonic() - started
    after = _snapshot(flood_app.store)
    received = idp_server.received()
    added = {k: v for k, v in after.items() if before.get(k) != v}
    statuses: Counter[int] = user["statuses"]
    _report(
        {
            "store": flood_app.kind,
            "surface": surface,
            "requests": REQUESTS,
            "seconds": round(elapsed, 2),
            "records_added": len(added),
            "bytes_added": sum(added.values()),
            "provider_par": received["par"],
            "provider_token": received["token"],
            "statuses": dict(statuses),
            "user": {k: v for k, v in user.items() if k != "statuses"},
        }
    )

    assert not [s for s in statuses if s >= 500], statuses
    assert user.get("authenticated") is True, user
    assert user["landed"] == "/done", user
    # The provider: the user's own PAR and token request, plus the admitted login starts.
    admitted = WORKERS * (LOGIN_BURST + LOGIN_RATE * elapsed)
    allowed_par = 1 + (admitted if surface in LOGIN_SURFACES else 0)
    allowed_par += 1 if surface == "post_real_state_reused" else 0  # the stranger's own login
    assert received["par"] <= allowed_par, (received, allowed_par)
    assert received["token"] <= 1, received
    # The store: each admitted login start is a login state and a pending-login index.
    records, size = USER_RECORDS, USER_BYTES
    if surface in LOGIN_SURFACES:
        records += 2 * admitted
        size += 2 * admitted * LOGIN_RECORD_BYTES
    if surface == "post_real_state_reused":
        records += 3  # the stranger's login: state, index, and one bridge record
        size += 2 * LOGIN_RECORD_BYTES + BRIDGE_RECORD_BYTES
    assert len(added) <= records, (len(added), records, sorted(added)[:20])
    assert sum(added.values()) <= size, (sum(added.values()), size)


def test_a_browser_signs_in_during_a_login_start_flood(flood_app, chromium):
    """Strangers exhaust the login starts; a real Chromium user still gets in.

    Their first start may meet the ``429`` page, which retries by itself after
    ``Retry-After``; then the provider's sign-in form, the ``form_post``
    bridge and the ``Strict`` cookie step, and the app's signed-in page.
    """
    make = SURFACES["login_get"](flood_app)
    statuses: dict[str, Counter[int]] = {}
    flood = threading.Thread(target=lambda: statuses.setdefault("all", _flood(flood_app, make)))
    context = chromium.new_context()
    page = context.new_page()
    flood.start()
    time.sleep(0.5)  # the flood is under way
    try:
        page.goto(f"{flood_app.origin}/oauth/login?next=/reports", timeout=60_000)
        page.wait_for_selector("input[name=login]", timeout=60_000)
        sign_in_at_provider(page)
        page.wait_for_url(f"{flood_app.origin}/reports", timeout=60_000)
        expect_signed_in(page, "Alice")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"flood-{flood_app.kind}-signed-in.png"))
    finally:
        flood.join()
        context.close()
    assert not [s for s in statuses["all"] if s >= 500], statuses
    assert statuses["all"][429] > 0, statuses  # the flood did meet the limit
