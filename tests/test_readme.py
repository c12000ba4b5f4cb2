"""The README's Python blocks are valid code that uses only the public API."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dash_oauth_otel
import dash_oauth_otel.adapter

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


def test_blocks_parse_and_import_public_names_only():
    public = {
        "dash_oauth_otel": set(dash_oauth_otel.__all__),
        "dash_oauth_otel.adapter": set(dash_oauth_otel.adapter.__all__),
    }
    for block in BLOCKS:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in public:
                for alias in node.names:
                    assert alias.name in public[node.module], (node.module, alias.name)
