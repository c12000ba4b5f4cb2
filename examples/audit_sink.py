"""A JSON-lines compliance sink for the module's audit events.

Every audit event reaches the standard logger ``dash_oauth_otel.audit`` with
the event as ``record.audit``; this handler appends one JSON object per line to
a file (rotate it with your usual tooling).  Events carry digests, never
tokens, codes, state or cookie values.

Usage::

    from examples.audit_sink import install_json_lines_sink

    install_json_lines_sink("/var/log/dash-app/audit.jsonl")
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

__all__ = ["JsonLinesAuditHandler", "install_json_lines_sink"]


class JsonLinesAuditHandler(logging.Handler):
    """Append each audit event as one JSON line to ``path``."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(level=logging.DEBUG)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        event: dict[str, Any] | None = getattr(record, "audit", None)
        if event is None:
            return
        line = json.dumps(event, default=str, sort_keys=True)
        try:
            with self._write_lock, self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError:
            self.handleError(record)


def install_json_lines_sink(path: str | Path) -> JsonLinesAuditHandler:
    """Send every audit event of this process to ``path`` as JSON lines."""
    handler = JsonLinesAuditHandler(path)
    logger = logging.getLogger("dash_oauth_otel.audit")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
