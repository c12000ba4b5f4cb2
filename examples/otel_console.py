"""The basic example app with its telemetry printed to the terminal.

``examples/basic_app.py`` behind login, plus the OpenTelemetry SDK configured
to print every span, every audit event (as an OTel log record) and the metrics
as JSON on standard output.  The library itself only uses the OpenTelemetry
API: configuring the SDK, as here, is the application's job.

Run it with the same variables as ``examples/basic_app.py``::

    DASH_OAUTH_ISSUER=https://login.example.com \
    DASH_OAUTH_CLIENT_ID=dash-app DASH_OAUTH_CLIENT_SECRET=... \
    DASH_OAUTH_REDIRECT_URI=http://127.0.0.1:8050/oauth/callback \
    DASH_OAUTH_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \
    python -m examples.otel_console

``OTEL_SERVICE_NAME`` names the service (default ``dash-oauth-otel-example``);
``OTEL_METRIC_EXPORT_INTERVAL`` sets how often metrics are printed (ms).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

from opentelemetry import _logs
from opentelemetry import metrics
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

try:  # the exporter's current name; older SDKs only have ConsoleLogExporter
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
except ImportError:  # pragma: no cover - depends on the installed SDK
    from opentelemetry.sdk._logs.export import ConsoleLogExporter as ConsoleLogRecordExporter  # type: ignore[assignment]

try:
    from examples import basic_app
except ImportError:  # pragma: no cover - run as ``python examples/otel_console.py``
    import basic_app  # type: ignore[no-redef]

DEFAULT_SERVICE_NAME = "dash-oauth-otel-example"


@dataclass(frozen=True)
class Telemetry:
    """The SDK providers installed by :func:`setup_telemetry`."""

    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    meter_provider: MeterProvider

    def flush(self) -> None:
        """Export everything buffered so far."""
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Export what is left and stop the exporters (call once, at exit)."""
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def setup_telemetry(out: TextIO | None = None) -> Telemetry:
    """Install SDK providers that print spans, log records and metrics to ``out``.

    :param out: Where to print (default: standard output).
    :returns: The providers, to flush or shut down.

    The OpenTelemetry API accepts one global provider of each kind per
    process: call this once, before the app is built.
    """
    stream = out if out is not None else sys.stdout
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME}
    )

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=stream)))
    trace.set_tracer_provider(tracer_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(ConsoleLogRecordExporter(out=stream))
    )
    _logs.set_logger_provider(logger_provider)

    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=stream))
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)

    return Telemetry(tracer_provider, logger_provider, meter_provider)


def main() -> None:  # pragma: no cover - manual entry point
    telemetry = setup_telemetry()
    try:
        basic_app.main()
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
