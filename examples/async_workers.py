"""The basic example app with its token work in worker processes on this host.

The code exchange at the callback, the token refresh, the revocation at logout
and introspection run in a pool of worker processes
(:class:`~dash_oauth_otel.workers.ProcessPoolBackend`): no request waits on
the provider for a refresh, and a login finishes on a short "signing you in"
page.  Nothing else to run.

Run it from the repository root with the same variables as
``examples/basic_app.py``::

    DASH_OAUTH_ISSUER=https://login.example.com \
    DASH_OAUTH_CLIENT_ID=dash-app DASH_OAUTH_CLIENT_SECRET=... \
    DASH_OAUTH_REDIRECT_URI=http://127.0.0.1:8050/oauth/callback \
    DASH_OAUTH_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \
    python -m examples.async_workers

or with several web processes on this host (they share the default
``DiskcacheStore``; each has its own pool)::

    gunicorn -w 2 -b 127.0.0.1:8050 'examples.async_workers:create_server()'

Optional: ``DASH_OAUTH_WORKERS`` (pool size, default 2),
``DASH_OAUTH_WORKER_TIMEOUT`` (seconds, default 30),
``DASH_OAUTH_ALLOW_INSECURE_LOOPBACK=1`` (a provider on ``http://127.0.0.1``),
``OTEL_TRACES_EXPORTER=console`` (print every span, the workers' included, on
standard error).

The workers rebuild the client by calling :func:`client` (``client_path``):
it reads the same environment, so the secrets never leave the host's
environment.  They set up their telemetry by calling :func:`setup_telemetry`
(``worker_init``): SDK set-up done in code is not carried into a worker.
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit

from dash import Dash

from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from dash_oauth_otel.workers import ProcessPoolBackend
from dash_oauth_otel.workers import WorkerBackend

try:
    from examples import basic_app
except ImportError:  # pragma: no cover - run as ``python examples/async_workers.py``
    import basic_app  # type: ignore[no-redef]

CLIENT_PATH = "examples.async_workers:client"
"""Where the workers find the client (a callable returning it is fine)."""

WORKER_INIT = "examples.async_workers:setup_telemetry"
"""What the workers call to set up their OpenTelemetry SDK."""

_installed: list[object] = []


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
    )


def setup_telemetry() -> None:
    """Install the OpenTelemetry SDK in this process, once.

    Called by the web process at start and by every worker before its first
    task (and again when the ``OTEL_*`` variables of the web process change:
    it must be safe to call twice).  With ``OTEL_TRACES_EXPORTER=console`` the
    spans are printed on standard error; put your own exporter here otherwise.
    """
    if _installed or os.environ.get("OTEL_TRACES_EXPORTER") != "console":
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    except ImportError:  # pragma: no cover - the SDK is the application's choice
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or "dash-oauth-otel-workers"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    trace.set_tracer_provider(provider)
    _installed.append(provider)


def create_app(
    oauth_client: OAuthClient | None = None,
    *,
    workers: WorkerBackend | None = None,
    client_path: str = CLIENT_PATH,
    worker_init: str | None = WORKER_INIT,
    **options: Any,
) -> Dash:
    """The basic app with token work in ``workers`` (default: a process pool)."""
    if workers is None:
        workers = ProcessPoolBackend(max_workers=int(os.environ.get("DASH_OAUTH_WORKERS", "2")))
    return basic_app.create_app(
        oauth_client if oauth_client is not None else client(),
        workers=workers,
        client_path=client_path,
        worker_init=worker_init,
        worker_timeout=float(os.environ.get("DASH_OAUTH_WORKER_TIMEOUT", "30")),
        **options,
    )


def create_server() -> Any:
    """The WSGI application, for ``gunicorn 'examples.async_workers:create_server()'``."""
    setup_telemetry()
    return create_app().server


def main() -> None:
    setup_telemetry()
    app = create_app()
    port = urlsplit(os.environ["DASH_OAUTH_REDIRECT_URI"]).port or 8050
    app.run(host="127.0.0.1", port=port, debug=False)


if __name__ == "__main__":
    main()
