"""Metric instruments of the package, created lazily from the global meter.

Attributes are of low cardinality only (provider name, outcome, phase,
``error.type``, HTTP method and status); never a user, session or URL path.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from opentelemetry import metrics
from opentelemetry.metrics import Counter
from opentelemetry.metrics import Histogram
from opentelemetry.metrics import Meter
from opentelemetry.metrics import UpDownCounter

from dash_oauth_otel.telemetry._scope import get_meter
from dash_oauth_otel.telemetry.switches import metrics_enabled

__all__ = [
    "ACTIVE_SESSIONS",
    "FAILURES",
    "HTTP_CLIENT_REQUEST_DURATION",
    "LOGIN_DURATION",
    "LOGIN_OUTCOMES",
    "REFRESHES",
    "REVOCATIONS",
    "WORKER_QUEUE_WAIT",
    "Instruments",
    "instruments",
    "record_failure",
    "record_counter",
    "record_http_duration",
    "record_login",
]

_log = logging.getLogger("dash_oauth_otel.telemetry")

HTTP_CLIENT_REQUEST_DURATION: Final = "http.client.request.duration"
"""Semconv histogram of the package's outbound calls, in seconds."""
LOGIN_OUTCOMES: Final = "dash_oauth_otel.login.outcomes"
"""Counter of completed logins by ``oauth.provider.name`` and ``outcome``."""
LOGIN_DURATION: Final = "dash_oauth_otel.login.duration"
"""Histogram: seconds from redirect issued to session established."""
FAILURES: Final = "dash_oauth_otel.failures"
"""Counter of failures by ``oauth.phase`` and ``error.type``."""
REFRESHES: Final = "dash_oauth_otel.refreshes"
"""Counter of token refreshes by ``outcome``."""
REVOCATIONS: Final = "dash_oauth_otel.revocations"
"""Counter of revocation attempts by ``oauth.token.which`` and ``oauth.status``."""
ACTIVE_SESSIONS: Final = "dash_oauth_otel.sessions.active"
"""Up-down counter of established login sessions."""
WORKER_QUEUE_WAIT: Final = "dash_oauth_otel.worker.queue_wait"
"""Histogram: seconds a token task waited before a worker started it."""

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class Instruments:
    """The package's instruments on one meter."""

    def __init__(self, meter: Meter) -> None:
        self.http_duration: Histogram = meter.create_histogram(
            HTTP_CLIENT_REQUEST_DURATION,
            unit="s",
            description="Duration of outbound HTTP requests to the provider.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self.login_outcomes: Counter = meter.create_counter(
            LOGIN_OUTCOMES, unit="{login}", description="Completed login attempts."
        )
        self.login_duration: Histogram = meter.create_histogram(
            LOGIN_DURATION,
            unit="s",
            description="Time from redirect issued to session established.",
        )
        self.failures: Counter = meter.create_counter(
            FAILURES, unit="{failure}", description="Failures by phase and error type."
        )
        self.refreshes: Counter = meter.create_counter(
            REFRESHES, unit="{refresh}", description="Token refreshes by outcome."
        )
        self.revocations: Counter = meter.create_counter(
            REVOCATIONS, unit="{revocation}", description="Token revocation attempts."
        )
        self.active_sessions: UpDownCounter = meter.create_up_down_counter(
            ACTIVE_SESSIONS, unit="{session}", description="Established login sessions."
        )
        self.worker_queue_wait: Histogram = meter.create_histogram(
            WORKER_QUEUE_WAIT, unit="s", description="Time token tasks waited for a worker."
        )


_lock = threading.Lock()
# Keyed by meter provider (kept referenced, so ids are not reused): one set of
# instruments per provider, reused on every call.
_cache: dict[int, tuple[object, Instruments]] = {}


def instruments() -> Instruments | None:
    """Return the instruments for the current meter, or ``None`` when switched off."""
    if not metrics_enabled():
        return None
    try:
        provider = metrics.get_meter_provider()
        key = id(provider)
        with _lock:
            entry = _cache.get(key)
            if entry is None:
                entry = _cache[key] = (provider, Instruments(get_meter()))
        return entry[1]
    except Exception:  # pragma: no cover - telemetry never breaks the flow
        _log.warning("could not create metric instruments", exc_info=True)
        return None


def record_http_duration(
    seconds: float,
    *,
    method: str,
    server_address: str,
    server_port: int,
    status: int | None,
    error_type: str | None,
) -> None:
    """Record one outbound call on ``http.client.request.duration``."""
    found = instruments()
    if found is None:
        return
    labels: dict[str, str | int] = {
        "http.request.method": method,
        "server.address": server_address,
        "server.port": server_port,
    }
    if status is not None:
        labels["http.response.status_code"] = status
    if error_type is not None:
        labels["error.type"] = error_type
    try:
        found.http_duration.record(seconds, labels)
    except Exception:  # pragma: no cover
        _log.warning("could not record a metric", exc_info=True)


def record_failure(phase: str, error_type: str) -> None:
    """Count one failure by phase and error type."""
    found = instruments()
    if found is None:
        return
    try:
        found.failures.add(1, {"oauth.phase": phase, "error.type": error_type})
    except Exception:  # pragma: no cover
        _log.warning("could not record a metric", exc_info=True)


def record_login(provider: str, outcome: str, seconds: float | None) -> None:
    """Count one login outcome and, for a success, its duration."""
    found = instruments()
    if found is None:
        return
    try:
        found.login_outcomes.add(1, {"oauth.provider.name": provider, "outcome": outcome})
        if seconds is not None:
            found.login_duration.record(seconds, {"oauth.provider.name": provider})
    except Exception:  # pragma: no cover
        _log.warning("could not record a metric", exc_info=True)


def record_counter(name: str, attributes: dict[str, str]) -> None:
    """Add one to the counter ``refreshes`` or ``revocations``."""
    found = instruments()
    if found is None:
        return
    try:
        counter = found.refreshes if name == "refreshes" else found.revocations
        counter.add(1, attributes)
    except Exception:  # pragma: no cover
        _log.warning("could not record a metric", exc_info=True)
