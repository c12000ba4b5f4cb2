"""The Celery application of the worker tests (``celery -A tests.workers.celery_app:app``).

Broker and result backend are the Redis database named by ``TEST_CELERY_URL``;
tasks go to the queue ``TEST_CELERY_QUEUE``, which the test's worker alone
consumes.  Registering :class:`~dash_oauth_otel.workers.CeleryBackend` on the
app registers the task ``dash_oauth_otel.run_task``; the worker rebuilds the
client from ``tests.workers.worker_client:client`` (configured from ``TEST_*``).
"""

from __future__ import annotations

import os

from celery import Celery

from dash_oauth_otel.workers import CeleryBackend

DEFAULT_URL = "redis://127.0.0.1:6379/11"


def make_app(url: str, queue: str | None) -> Celery:
    """A Celery app on ``url`` whose tasks go to ``queue``, JSON only."""
    celery = Celery("dash_oauth_otel_tests", broker=url, backend=url)
    celery.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=600,
        task_default_queue=queue or "celery",
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
    )
    return celery


app = make_app(os.environ.get("TEST_CELERY_URL", DEFAULT_URL), os.environ.get("TEST_CELERY_QUEUE"))
backend = CeleryBackend(app, queue=os.environ.get("TEST_CELERY_QUEUE"))
