"""The Dash module's login in Chromium through Glewlwyd's login pages."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.adapter.conftest import serve_app
from tests.glewlwyd.harness import USER_NAME
from tests.glewlwyd.harness import grant_and_continue
from tests.glewlwyd.harness import sign_in


def test_dash_login_through_glewlwyd(glewlwyd, gl_context):
    with serve_app(glewlwyd) as running:  # type: ignore[arg-type]
        assert running.client.uses_par  # Glewlwyd offers PAR
        page = gl_context.new_page()
        target = running.url + "/reports"
        page.goto(target)
        assert page.url.startswith(glewlwyd.origin + "/login.html"), page.url
        sign_in(page)
        for _ in range(50):
            if page.url.startswith(target):
                break
            grant_and_continue(page)
            page.wait_for_timeout(200)
        page.wait_for_url(target + "*")
        expect(page.locator("#greeting")).to_have_text(f"Signed in as {USER_NAME}")
