"""``vignettes/security.md`` maps each defence to the tests that prove it: every one exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


_TEST_DEFINITION = re.compile(r"^\s*(?:async\s+)?def\s+(test\w*)\s*\(", re.M)


def _test_names(path: Path) -> set[str]:
    # Read with a pattern rather than ``ast.parse``: CPython 3.11 can raise a
    # spurious "AST constructor recursion depth mismatch" when other threads of
    # the run (servers, sweepers) compile code at the same time.
    return set(_TEST_DEFINITION.findall(path.read_text()))


def test_every_test_named_by_the_security_vignette_exists() -> None:
    references = REFERENCE.findall((ROOT / "vignettes" / "security.md").read_text())
    assert len(references) > 100
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file() or name not in _test_names(ROOT / path)
    ]
    assert missing == []
