"""The basic example app sending its telemetry to an OpenTelemetry collector.

``examples/basic_app.py`` behind login, plus the OpenTelemetry SDK exporting
spans, audit events (as OTel log records) and metrics over OTLP/HTTP
(protobuf) to a collector.  Needs the exporter next to the SDK::

    pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http

Run it with the same variables as ``examples/basic_app.py``::

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
    DASH_OAUTH_ISSUER=https://login.example.com \
    DASH_OAUTH_CLIENT_ID=dash-app DASH_OAUTH_CLIENT_SECRET=... \
    DASH_OAUTH_REDIRECT_URI=http://127.0.0.1:8050/oauth/callback \
    DASH_OAUTH_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \
    python -m examples.otel_otlp

``OTEL_EXPORTER_OTLP_ENDPOINT`` is the collector's base URL (default
``http://127.0.0.1:4318``); the signals go to ``/v1/traces``, ``/v1/logs`` and
``/v1/metrics`` under it, unless ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``..._LOGS_ENDPOINT`` or ``..._METRICS_ENDPOINT`` name a full URL for one
signal.  ``OTEL_SERVICE_NAME`` names the service; the exporters also honour the
SDK's other ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, compression).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry import _logs
from opentelemetry import metrics
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

try:
    from examples import basic_app
except ImportError:  # pragma: no cover - run as ``python examples/otel_otlp.py``
    import basic_app  # type: ignore[no-redef]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_SERVICE_NAME = "dash-oauth-otel-example"


@dataclass(frozen=True)
class Telemetry:
    """The SDK providers installed by :func:`setup_telemetry`."""

    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    meter_provider: MeterProvider

    def flush(self) -> None:
        """Send everything buffered so far."""
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Send what is left and stop the exporters (call once, at exit)."""
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def signal_endpoint(signal: str, base: str | None = None) -> str:
    """The OTLP/HTTP URL of one signal (``traces``, ``logs`` or ``metrics``)."""
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if specific and base is None:
        return specific
    root = base or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return f"{root.rstrip('/')}/v1/{signal}"


def setup_telemetry(endpoint: str | None = None) -> Telemetry:
    """Install SDK providers that export spans, log records and metrics over OTLP/HTTP.

    :param endpoint: The collector's base URL; default from the environment (see
        the module docstring), else ``http://127.0.0.1:4318``.
    :returns: The providers, to flush or shut down.

    The OpenTelemetry API accepts one global provider of each kind per
    process: call this once, before the app is built.
    """
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME}
    )

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=signal_endpoint("traces", endpoint)))
    )
    trace.set_tracer_provider(tracer_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=signal_endpoint("logs", endpoint)))
    )
    _logs.set_logger_provider(logger_provider)

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=signal_endpoint("metrics", endpoint))
    )
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
