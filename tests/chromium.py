"""One headless Chromium for the whole run, shared by every browser test.

Playwright's sync API keeps an event loop in the main thread while it runs, so
one instance serves the session and the tests that use it are collected last:
tests before them can still run their own asyncio loops.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (fails, never skips, when missing)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "the browser tests do not run without it."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that need the browser after all others."""
    items.sort(key=lambda item: "chromium" in getattr(item, "fixturenames", ()))
