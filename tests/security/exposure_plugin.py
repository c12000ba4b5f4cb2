"""Fixtures shared by the attack and fault suites: every test's output is scanned for secrets."""

from __future__ import annotations

from collections.abc import Generator
from collections.abc import Iterator

import pytest

from tests.security.support import Exposure
from tests.security.support import exposure_for


@pytest.fixture
def exposure(request, telemetry, caplog: pytest.LogCaptureFixture) -> Iterator[Exposure]:
    """Browsers that record the app's output; the secret scan runs when the test has passed."""
    with exposure_for(request, telemetry, caplog) as found:
        yield found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the call-phase report on the item, for the scan in ``exposure``."""
    report = yield
    if report.when == "call":
        item.report_call = report  # type: ignore[attr-defined]
    return report
