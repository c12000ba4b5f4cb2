"""The demo, end to end: ``python -m examples.demo`` (what ``scripts/demo`` runs) in a
subprocess, with its own embedded provider, driven by a real Chromium.

Alice signs in through the provider's login form, sees herself on the home
page and her login drawn on the trace page (spans, audit events, metrics);
bob, an analyst, is kept out of the admins page.  The trace page is saved as
``docs/images/trace-page.png``.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import APIResponse
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
# The README's picture is refreshed only on request (UPDATE_SCREENSHOTS=1), so
# that a test run never changes a tracked file.
SCREENSHOT = (
    ROOT / "docs" / "images" / "trace-page.png"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else ROOT / "artifacts" / "trace-page.png"
)
TOKEN_TTL = 6  # seconds: short, so a refresh happens while the test looks
STARTUP_TIMEOUT = 60.0
TIMEOUT_MS = 20_000
LOGIN_SPANS = (
    "dash_oauth_otel.login.request",
    "dash_oauth_otel.callback",
    "dash_oauth_otel.token.exchange",
)

expect.set_options(timeout=TIMEOUT_MS)


class Demo:
    """The demo process and what it printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._ready: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.demo",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--token-ttl",
                str(TOKEN_TTL),
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self.url = self._wait_for_url()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"Open\s+(http://\S+?)/?$", line.strip())
            if found:
                self._ready.put(found.group(1))
        self._ready.put(None)

    def _wait_for_url(self) -> str:
        try:
            url = self._ready.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            pytest.fail("the demo did not start; its output:\n" + self.output())
        return url

    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """The demo, started as ``scripts/demo`` starts it, on a free port."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: the demo's OpenID provider needs Node.js 20 or later")
    running = Demo()
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, f"the demo exited with {code}:\n{running.output()}"
        assert "stopping" in running.output()


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """The session's Chromium."""
    return chromium


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Open tabs in fresh browser contexts (own cookie jars), 1280 px wide."""
    contexts: list[Any] = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


def sign_in(page: Page, demo: Demo, path: str, username: str) -> None:
    """Open ``path``; the app sends the browser to the provider, where ``username`` signs in."""
    page.goto(demo.url + path)
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.wait_for_url(demo.url + path)


def waterfall_spans(page: Page) -> list[str]:
    """The span names in the waterfall figure's data."""
    names: list[str] = page.evaluate(
        """() => {
            const gd = document.querySelector('#trace-waterfall .js-plotly-plot');
            if (!gd || !gd.data) return [];
            return gd.data.flatMap(t => (t.customdata || []).map(c => c[0]));
        }"""
    )
    return names


def wait_for(page: Page, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``predicate`` (letting the page run) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(200)


def call_admins_audit(page: Page, demo: Demo) -> APIResponse:
    """Call the admins page's data callback directly, with the page's cookies."""
    return page.request.post(
        demo.url + "/_dash-update-component",
        data={
            "output": "admins-audit.children",
            "outputs": {"id": "admins-audit", "property": "children"},
            "inputs": [{"id": "admins-tick", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["admins-tick.n_intervals"],
            "state": [],
        },
    )


def test_alice_sees_her_login_traced(demo: Demo, new_page: Callable[[], Page]) -> None:
    page = new_page()
    sign_in(page, demo, "/", "alice")
    expect(page.locator("#home-title")).to_have_text("Welcome, Alice")
    expect(page.locator("#home-user")).to_contain_text("alice")
    expect(page.locator("#home-groups")).to_contain_text("admins")
    expect(page.locator("#token-seconds")).to_contain_text(" s")

    page.goto(demo.url + "/trace")
    names = wait_for(
        page,
        lambda: set(LOGIN_SPANS) <= set(waterfall_spans(page)) and waterfall_spans(page),
        "the login's spans in the waterfall",
    )
    assert names[0] == "dash_oauth_otel.login.request", names
    expect(page.locator("#trace-operation-label")).to_contain_text("Login")
    audit = page.locator("#audit-events")
    for event in ("audit_redirect_issued", "audit_token_exchange", "audit_login_success"):
        expect(audit).to_contain_text(event)
    expect(page.locator("#header-user")).to_contain_text("Alice")

    # A refresh happens within a few seconds (short tokens); the metrics show it.
    wait_for(
        page,
        lambda: int(page.locator(".kpi-value").nth(2).inner_text() or 0) > 0,
        "a token refresh in the metrics",
    )
    expect(page.locator("#metric-refreshes")).to_contain_text("success")
    expect(page.locator("#metric-logins")).to_contain_text("success")
    page.wait_for_timeout(2500)  # one more live update, then a still picture
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # The trace page still draws the login, not the refreshes that followed.
    assert set(LOGIN_SPANS) <= set(waterfall_spans(page))

    # Alice is an admin: the admins' data callback answers her.
    response = call_admins_audit(page, demo)
    assert response.ok, response.status
    assert "audit_login_success" in response.text()


def test_group_pages_follow_membership(demo: Demo, new_page: Callable[[], Page]) -> None:
    page = new_page()
    sign_in(page, demo, "/admins", "bob")
    expect(page.locator(".dash-oauth-forbidden")).to_contain_text("Not allowed")
    expect(page.locator("#admins-badge")).to_have_count(0)

    page.goto(demo.url + "/analysts")
    expect(page.locator("#analysts-badge")).to_be_visible()
    expect(page.locator("#analysts-latency table")).to_contain_text("POST to the provider")
    expect(page.locator(".dash-oauth-forbidden")).to_have_count(0)

    # The admins' data callback refuses bob even when called directly.
    response = call_admins_audit(page, demo)
    assert response.status >= 400, response.text()
    assert "audit_" not in response.text()
