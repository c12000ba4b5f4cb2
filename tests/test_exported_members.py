"""The public API: sorted, complete, and free of framework imports below the adapter."""

from __future__ import annotations

import subprocess
import sys

import dash_oauth_otel


def test_all_is_sorted_and_complete():
    public = sorted(name for name in vars(dash_oauth_otel) if not name.startswith("_"))
    public = [
        n
        for n in public
        if not isinstance(getattr(dash_oauth_otel, n), type(sys)) and n != "annotations"
    ]
    names = [n for n in dash_oauth_otel.__all__ if n != "__version__"]
    assert names == sorted(names, key=str)
    assert sorted(names) == public


def test_import_pulls_in_no_web_framework():
    code = (
        "import sys, dash_oauth_otel\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'dash', 'werkzeug'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
