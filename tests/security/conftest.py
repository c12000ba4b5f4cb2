"""Fixtures of the attack suite (see ``tests/security/exposure_plugin.py``)."""

from __future__ import annotations

from tests.security.exposure_plugin import exposure as exposure
from tests.security.exposure_plugin import pytest_runtest_makereport as pytest_runtest_makereport
