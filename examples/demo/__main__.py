"""``python -m examples.demo``: run the demo (see :mod:`examples.demo.cli`)."""

from __future__ import annotations

from examples.demo.cli import main

raise SystemExit(main())
