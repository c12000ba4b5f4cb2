"""Every example is started and logged into."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from examples.background_callback import create_app as background_app
from tests.adapter.conftest import app_and_browser
from tests.adapter.conftest import serve_app
from tests.idp.harness import login

ROOT = Path(__file__).resolve().parents[2]


def test_form_post_example_logs_in(idp):
    # examples/form_post_app.py is the basic app with response_mode=form_post.
    with app_and_browser(idp, response_mode="form_post") as (_running, http):
        start = http.get("/oauth/login?next=/")
        result = login(start.headers["location"], http_client=http)
        assert result.response_mode == "form_post"
        bridged = result.deliver(http)
        landed = http.get(bridged.headers["location"])
        assert landed.status_code == 303
        assert http.get("/oauth/status").json()["user"]["sub"] == "alice"


def test_background_callback_example_knows_the_user(idp, chromium, tmp_path):
    def factory(client, **options):
        return background_app(client, cache_dir=str(tmp_path / "bg"), **options)

    with serve_app(idp, factory=factory) as running:
        context = chromium.new_context()
        try:
            page = context.new_page()
            page.goto(running.url + "/")
            page.fill("input[name=login]", "alice")
            page.fill("input[name=password]", "any")
            page.click("button[type=submit]")
            page.wait_for_url(running.url + "/")
            page.click("#build")
            expect(page.locator("#report")).to_contain_text("report for alice", timeout=30000)
        finally:
            context.close()


def test_wheel_carries_the_package_and_its_type_marker(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("dash_oauth_otel-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dash_oauth_otel/py.typed" in names
    assert "dash_oauth_otel/adapter/module.py" in names
    assert not any(name.startswith(("tests/", "examples/")) for name in names)
