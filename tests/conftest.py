"""Shared pytest fixtures: the test OpenID provider.

One provider process serves the whole run (``idp_server``, session scope).
Tests use ``idp``: the same provider, with every fault cleared before and
after the test, so a fault armed by one test never leaks into another.
Session-scoped fixtures that need the provider use ``idp_server`` directly.
Tests that use either fixture get the ``idp`` marker (``-m "not idp"``
deselects them). A failing test that used the provider gets the tail of
the provider's log attached to its report.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from collections.abc import Iterator
from pathlib import Path

import pytest

# The harness is imported as tests.idp.harness, so the project root must be
# importable even when pytest is run as a script rather than `python -m pytest`.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.idp.harness import TestProvider  # noqa: E402

pytest_plugins = ["tests.otel", "tests.chromium"]

_PROVIDER_FIXTURES = {"idp", "idp_server"}


@pytest.fixture(scope="session")
def idp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestProvider]:
    """Start one test provider for the whole run; its log is in the run's temp dir."""
    log_path = tmp_path_factory.mktemp("idp") / "provider.log"
    provider = TestProvider(log_path=log_path).start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def idp(idp_server: TestProvider) -> Iterator[TestProvider]:
    """The session's test provider with no fault armed (cleared again afterwards)."""
    idp_server.reset_faults()
    yield idp_server
    idp_server.reset_faults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that talks to the provider with ``idp``."""
    for item in items:
        if _PROVIDER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.idp)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the provider's recent output to the report of a failed provider test."""
    report = yield
    if report.failed and _PROVIDER_FIXTURES & set(getattr(item, "fixturenames", ())):
        funcargs = getattr(item, "funcargs", {})
        provider = funcargs.get("idp") or funcargs.get("idp_server")
        if isinstance(provider, TestProvider):
            report.sections.append(("test provider log (tail)", provider.log_tail()))
    return report
