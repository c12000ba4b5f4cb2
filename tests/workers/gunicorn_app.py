"""WSGI entry point of the two-process race tests: ``examples/async_workers.py`` under gunicorn.

Configured from the environment (``TEST_*``): the processes share a
``DiskcacheStore`` in ``TEST_STORE_DIR``; each has its own process pool, whose
workers rebuild ``tests.workers.worker_client:client`` and export their spans
to ``TEST_SPAN_FILE``.  Every audit event of a web process is appended to
``TEST_AUDIT_FILE``, and ``/pid`` (behind login, so its request resolves and
refreshes the session like any page) answers the serving process's id.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import flask

from dash_oauth_otel.workers import ProcessPoolBackend
from examples.async_workers import create_app
from tests.env_client import client_from_test_env
from tests.workers.conftest import CLIENT_PATH
from tests.workers.conftest import WORKER_INIT

_lock = threading.Lock()


def _audit(event: dict[str, Any]) -> None:
    line = json.dumps({**event, "web_pid": os.getpid()}, default=str) + "\n"
    with _lock, open(os.environ["TEST_AUDIT_FILE"], "a", encoding="utf-8") as out:
        out.write(line)


def _pid() -> flask.Response:
    record = flask.g.get("dash_oauth_session")
    return flask.jsonify(
        {
            "pid": os.getpid(),
            "authenticated": record is not None,
            "epoch": getattr(record, "epoch", None),
        }
    )


def create_server() -> Any:
    """The example app for the client named by ``TEST_*``."""
    client = client_from_test_env()
    app = create_app(
        client,
        workers=ProcessPoolBackend(max_workers=1),
        client_path=CLIENT_PATH,
        worker_init=WORKER_INIT,
        audit_hook=_audit,
    )
    app.server.add_url_rule("/pid", "pid", _pid)
    return app.server
