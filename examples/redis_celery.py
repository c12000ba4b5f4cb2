"""The basic example app for several hosts: token work on Celery workers, sessions in Redis.

Web processes on any number of hosts share their login state and sessions
through a :class:`~dash_oauth_otel.RedisStore`; the code exchange, refresh,
revocation and introspection run on Celery workers
(:class:`~dash_oauth_otel.workers.CeleryBackend`) on any host that reaches
the broker.  Redis is both the broker and the result backend.  What crosses the
broker is sealed with the client's ``state_key``: no code, token or secret in
clear.

From the repository root, with the variables of ``examples/basic_app.py``
set in both shells (the workers need the same client secret and secret key)::

    # the workers (one or more, on any host)
    celery -A examples.redis_celery:celery_app worker --loglevel=INFO

    # the web process (or: gunicorn -w 4 'examples.redis_celery:create_server()')
    python -m examples.redis_celery

Optional: ``DASH_OAUTH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``),
``DASH_OAUTH_REDIS_NAMESPACE`` (prefix of the store's keys, default
``dash_oauth_otel``), ``DASH_OAUTH_CELERY_QUEUE`` (default
``dash_oauth_otel``), ``DASH_OAUTH_WORKER_TIMEOUT`` (seconds, default 30),
``DASH_OAUTH_ALLOW_INSECURE_LOOPBACK=1``, ``OTEL_TRACES_EXPORTER=console``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from dash import Dash

from dash_oauth_otel import OAuthClient
from dash_oauth_otel import RedisStore
from dash_oauth_otel import oidc_discover
from dash_oauth_otel.workers import CeleryBackend

try:
    from examples import basic_app
    from examples.async_workers import setup_telemetry
except ImportError:  # pragma: no cover - run as ``python examples/redis_celery.py``
    import basic_app  # type: ignore[no-redef]
    from async_workers import setup_telemetry  # type: ignore[no-redef]

__all__ = ["backend", "celery_app", "client", "create_app", "create_server", "setup_telemetry"]

REDIS_URL = os.environ.get("DASH_OAUTH_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("DASH_OAUTH_REDIS_NAMESPACE", "dash_oauth_otel")
QUEUE = os.environ.get("DASH_OAUTH_CELERY_QUEUE", "dash_oauth_otel")
CLIENT_PATH = "examples.redis_celery:client"
WORKER_INIT = "examples.redis_celery:setup_telemetry"

# The same module is imported by the web processes and by the workers
# (``celery -A examples.redis_celery:celery_app``): registering the backend
# registers the task ``dash_oauth_otel.run_task`` on both sides.
celery_app = Celery("dash_oauth_otel_example", broker=REDIS_URL, backend=REDIS_URL)
celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)
backend = CeleryBackend(celery_app, queue=QUEUE)


def store() -> RedisStore:
    """The store shared by every web process on every host."""
    return RedisStore.from_url(REDIS_URL, namespace=NAMESPACE)


def client() -> OAuthClient:
    """The OAuth client, from ``DASH_OAUTH_*`` (called by the web process and each worker)."""
    provider = oidc_discover(
        os.environ["DASH_OAUTH_ISSUER"],
        allow_insecure_loopback=os.environ.get("DASH_OAUTH_ALLOW_INSECURE_LOOPBACK") == "1",
    )
    return OAuthClient(
        provider=provider,
        client_id=os.environ["DASH_OAUTH_CLIENT_ID"],
        client_secret=os.environ.get("DASH_OAUTH_CLIENT_SECRET") or None,
        redirect_uri=os.environ["DASH_OAUTH_REDIRECT_URI"],
        scopes=("profile", "email"),
        state_key=os.environ["DASH_OAUTH_SECRET_KEY"],
        state_store=store(),
    )


def create_app(oauth_client: OAuthClient | None = None, **options: Any) -> Dash:
    """The basic app with its token work on the Celery workers."""
    return basic_app.create_app(
        oauth_client if oauth_client is not None else client(),
        workers=backend,
        client_path=CLIENT_PATH,
        worker_init=WORKER_INIT,
        worker_timeout=float(os.environ.get("DASH_OAUTH_WORKER_TIMEOUT", "30")),
        **options,
    )


def create_server() -> Any:
    """The WSGI application, for ``gunicorn 'examples.redis_celery:create_server()'``."""
    setup_telemetry()
    return create_app().server


def main() -> None:
    setup_telemetry()
    app = create_app()
    port = urlsplit(os.environ["DASH_OAUTH_REDIRECT_URI"]).port or 8050
    app.run(host="127.0.0.1", port=port, debug=False)


if __name__ == "__main__":
    main()
