"""``vignettes/security.md`` maps each defence to the tests that prove it: every one exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test")
    }


def test_every_test_named_by_the_security_vignette_exists() -> None:
    references = REFERENCE.findall((ROOT / "vignettes" / "security.md").read_text())
    assert len(references) > 100
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file() or name not in _test_names(ROOT / path)
    ]
    assert missing == []
