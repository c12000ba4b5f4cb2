"""What worker processes import in the worker tests: the client and a telemetry set-up.

Both are configured from the environment, which spawned workers inherit.  The
Celery workers' client keeps its state (the task ids already run, among others)
in Redis, under a namespace of the test's queue, so that every worker process
of a test shares it; the process pool's client keeps it in memory.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import RedisStore
from dash_oauth_otel import oidc_discover
from dash_oauth_otel._types import Store


def _store() -> Store:
    url = os.environ.get("TEST_CELERY_URL")
    if not url:
        return MemoryStore()
    queue = os.environ.get("TEST_CELERY_QUEUE") or "celery"
    return RedisStore.from_url(url, namespace=f"dash-oauth-otel-test-worker-{queue}")


def _client() -> OAuthClient:
    return OAuthClient(
        provider=oidc_discover(os.environ["TEST_ISSUER"], allow_insecure_loopback=True),
        client_id=os.environ["TEST_CLIENT_ID"],
        client_secret=os.environ.get("TEST_CLIENT_SECRET") or None,
        redirect_uri=os.environ["TEST_REDIRECT_URI"],
        scopes=("profile", "email", "groups"),
        state_key=os.environ["TEST_SECRET"],
        state_store=_store(),
    )


client = _client if "TEST_ISSUER" in os.environ else None


class FileSpanExporter(SpanExporter):
    """Append finished spans as JSON lines, with the OTEL_SERVICE_NAME seen at export."""

    _lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock, open(os.environ["TEST_SPAN_FILE"], "a", encoding="utf-8") as out:
            for span in spans:
                parent = span.parent.span_id if span.parent else None
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "trace_id": span.context.trace_id,
                            "span_id": span.context.span_id,
                            "parent_id": parent,
                            "attributes": dict(span.attributes or {}),
                            "service": os.environ.get("OTEL_SERVICE_NAME"),
                            "pid": os.getpid(),
                        },
                        default=str,
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


_installed: list[TracerProvider] = []
calls: list[str | None] = []


def setup_telemetry() -> None:
    """The worker_init of the tests: install the SDK once per worker process."""
    calls.append(os.environ.get("OTEL_SERVICE_NAME"))
    if _installed:
        return
    from opentelemetry import trace

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter()))
    trace.set_tracer_provider(provider)
    _installed.append(provider)
