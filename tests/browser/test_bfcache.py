"""Back after logout, with Chromium's back/forward cache on (its default outside Playwright).

Playwright launches Chromium with ``--disable-back-forward-cache``; this test
launches its own without that flag, proves with a control page that the cache
really restores pages in that launch, then signs in, signs out and goes back:
the app's page must come from the server again (``Cache-Control: no-store``)
and show the signed-out page, never the signed-in content.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page
from playwright.sync_api import expect
from werkzeug.serving import make_server
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from tests.browser.conftest import FLOW_TIMEOUT
from tests.browser.conftest import log_in
from tests.browser.conftest import log_requests
from tests.browser.conftest import serve
from tests.chromium import CHROMIUM
from tests.chromium import CHROMIUM_ARGS

# Records every pageshow of the page (persisted=true: restored from the back/forward cache).
PAGESHOW = (
    "window.__shows = [];"
    "addEventListener('pageshow', function (e) { window.__shows.push(e.persisted); });"
)


@pytest.fixture
def bfcache_browser(chromium: Browser) -> Iterator[Browser]:
    """A second Chromium of the same Playwright, with the back/forward cache left on."""
    launched = chromium.browser_type.launch(
        executable_path=str(CHROMIUM),
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def control_site() -> Iterator[str]:
    """Two plain pages with no ``Cache-Control``: what the back/forward cache may keep."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        html = f"<!doctype html><title>{request.path}</title><p id=where>{request.path}</p>"
        return Response(html, mimetype="text/html")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def _restored(page: Page) -> bool:
    shows: list[bool] = page.evaluate("window.__shows || []")
    return bool(shows) and shows[-1] is True


def _back(page: Page) -> None:
    # A provider page that answered a POST may not come back without resubmission.
    with contextlib.suppress(PlaywrightError):
        page.go_back(wait_until="commit")
    page.wait_for_timeout(500)


def test_back_after_logout_does_not_show_the_signed_in_page(
    idp, bfcache_browser, control_site, shot
):
    context = bfcache_browser.new_context(viewport={"width": 1000, "height": 700})
    context.set_default_timeout(FLOW_TIMEOUT)
    context.add_init_script(PAGESHOW)
    try:
        page = context.new_page()
        # The control: a page without Cache-Control comes back from the cache.
        page.goto(control_site + "/first")
        page.goto(control_site + "/second")
        page.go_back(wait_until="commit")  # a restored page fires no load event
        expect(page.locator("#where")).to_have_text("/first")
        assert _restored(page), "the back/forward cache is not on in this launch"

        with serve(idp) as running:
            home = running.url + "/"
            log_in(page, running, "/")
            shot(page, "signed-in")
            page.click("#logout")
            confirm = page.locator("button[name=logout][value=yes]")
            expect(confirm).to_be_visible()
            confirm.click()
            # Wherever the sign-out ends (the signed-out page; before it existed, the
            # provider's sign-in form), Back must not show the signed-in page.
            ended = page.locator("#dash-oauth-signed-out, input[name=login]")
            expect(ended.first).to_be_visible()

            served = log_requests(running)
            for _ in range(4):
                if page.url == home:
                    break
                _back(page)
            assert page.url == home, page.url
            assert not _restored(page), "the signed-in page came back from the cache"
            expect(page.locator("#greeting")).to_have_count(0)
            expect(page.locator("#dash-oauth-signed-out")).to_be_visible()
            assert [r["status"] for r in served.paths("/")] == [401]
            shot(page, "back-after-logout")
    finally:
        context.close()
