"""Fixtures for the worker tests: a process pool whose workers rebuild the test client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dash_oauth_otel.workers import ProcessPoolBackend
from examples.basic_app import create_app
from tests.adapter.conftest import SECRET

CLIENT_PATH = "tests.workers.worker_client:client"
WORKER_INIT = "tests.workers.worker_client:setup_telemetry"


@pytest.fixture
def span_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "worker-spans.jsonl"
    monkeypatch.setenv("TEST_SPAN_FILE", str(path))
    return path


def worker_spans(path: Path) -> list[dict[str, Any]]:
    """Spans the workers exported so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def pool(span_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessPoolBackend]:
    backend = ProcessPoolBackend(max_workers=1)
    yield backend
    backend.shutdown()


def worker_factory(backend: ProcessPoolBackend, **extra: Any):
    """An app factory for ``serve_app`` that runs token work in ``backend``."""

    def factory(client: Any, **options: Any) -> Any:
        os.environ.update(
            {
                "TEST_ISSUER": client.provider.issuer,
                "TEST_CLIENT_ID": client.client_id,
                "TEST_CLIENT_SECRET": client.client_secret or "",
                "TEST_REDIRECT_URI": client.redirect_uri,
                "TEST_SECRET": SECRET,
            }
        )
        return create_app(
            client,
            workers=backend,
            client_path=CLIENT_PATH,
            worker_init=WORKER_INIT,
            worker_timeout=20,
            **extra,
            **options,
        )

    return factory
