"""Fixtures for the harness tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """A cookie-keeping HTTP client standing in for a browser."""
    with httpx.Client(timeout=15.0) as client:
        yield client
