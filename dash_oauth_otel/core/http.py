"""The one outbound HTTP seam of the package.

Every call to a provider (discovery, JWKS, PAR, token, userinfo, revocation,
introspection) goes through :class:`HttpClient`, which:

* re-checks the URL against the endpoint policy (:mod:`.urls`) on every call;
* never follows redirects: a 3xx answer is a :class:`TransportError`, so that
  credentials are never replayed to another location (RFC 9700 §4.11);
* caps the response body (1 MiB by default) while streaming it;
* applies a timeout and turns every network failure into :class:`TransportError`;
* opens the catalogued client span (``*.http``) with stable semantic-convention
  attributes and records ``http.client.request.duration``.

Response bodies are never echoed in errors or telemetry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import urlsplit

import httpx
from opentelemetry.trace import SpanKind

from dash_oauth_otel._process import current_pid
from dash_oauth_otel._version import __version__
from dash_oauth_otel.core.urls import check_endpoint_url
from dash_oauth_otel.core.urls import strip_query
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import TransportError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry.metrics import record_http_duration
from dash_oauth_otel.telemetry.spans import record_http_error
from dash_oauth_otel.telemetry.spans import set_attributes
from dash_oauth_otel.telemetry.spans import span

__all__ = ["HttpClient", "HttpPolicy", "HttpResponse"]

DEFAULT_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class HttpPolicy:
    """Limits and host policy for outbound calls.

    :param timeout: Seconds for connect, read, write and pool waits.
    :param max_body_bytes: Largest response body accepted.
    :param allowed_hosts: Optional host allowlist (exact, or ``.domain`` suffix).
    :param allow_insecure_loopback: Accept ``http`` on loopback hosts.
    :param user_agent: The ``User-Agent`` header sent.
    """

    timeout: float = 5.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_hosts: tuple[str, ...] = ()
    allow_insecure_loopback: bool = False
    user_agent: str = f"dash-oauth-otel/{__version__}"


@dataclass(frozen=True)
class HttpResponse:
    """A completed response whose body was read within the size cap."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def content_type(self) -> str:
        """The media type, lowercased and without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


@dataclass
class HttpClient:
    """Outbound HTTP under an :class:`HttpPolicy`.

    :param policy: Limits and host policy.
    :param transport: An ``httpx`` transport to use instead of the network (unit
        tests of pure functions only).
    """

    policy: HttpPolicy = field(default_factory=HttpPolicy)
    transport: httpx.BaseTransport | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _pid: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _http(self) -> httpx.Client:
        # One pooled client per process: connections must not be shared across fork.
        with self._lock:
            if self._client is None or self._pid != current_pid():
                self._client = httpx.Client(
                    transport=self.transport,
                    follow_redirects=False,
                    timeout=httpx.Timeout(self.policy.timeout),
                    headers={"User-Agent": self.policy.user_agent},
                    trust_env=False,
                )
                self._pid = current_pid()
            return self._client

    def close(self) -> None:
        """Close pooled connections (a later request opens new ones)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def request(
        self,
        method: str,
        url: str,
        *,
        span_name: str,
        phase: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request and read its body within the cap.

        :param span_name: The catalog name of the client span.
        :param phase: The ``oauth.phase`` of the call.
        :param what: The endpoint's name for error messages (``"token endpoint"``).
        :raises TransportError: On a policy refusal, a redirect, a network failure,
            a timeout or an oversized body.  Non-2xx answers are returned.
        """
        try:
            check_endpoint_url(
                url,
                what=what,
                allow_insecure_loopback=self.policy.allow_insecure_loopback,
                allowed_hosts=self.policy.allowed_hosts,
            )
        except ConfigError as exc:
            audit.emit(
                audit.TRANSPORT_ERROR,
                url=strip_query(url),
                phase=phase,
                reason="url_policy_refused",
            )
            raise TransportError(exc.message, phase=phase, reason="url_policy_refused") from None
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        safe_url = strip_query(url)
        span_attrs = {
            attr.HTTP_REQUEST_METHOD: method,
            attr.SERVER_ADDRESS: parts.hostname,
            attr.SERVER_PORT: port,
            attr.URL_FULL: safe_url,
            attr.OAUTH_PHASE: phase,
        }
        started = time.perf_counter()
        status: int | None = None
        error_type: str | None = None
        with span(span_name, span_attrs, kind=SpanKind.CLIENT) as current:
            try:
                response = self._send(method, url, headers, data, what=what, phase=phase)
                status = response.status
                set_attributes(
                    current,
                    {
                        attr.HTTP_RESPONSE_STATUS_CODE: response.status,
                        attr.HTTP_RESPONSE_CONTENT_TYPE: response.content_type or None,
                    },
                )
                if response.status >= 400:
                    error_type = str(response.status)
                    record_http_error(current, response.status, what)
                return response
            except TransportError as exc:
                error_type = type(exc).__qualname__
                audit.emit(
                    audit.TRANSPORT_ERROR,
                    method=method,
                    url=safe_url,
                    phase=phase,
                    reason=exc.reason,
                )
                raise
            finally:
                record_http_duration(
                    time.perf_counter() - started,
                    method=method,
                    server_address=parts.hostname or "",
                    server_port=port,
                    status=status,
                    error_type=error_type,
                )

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        *,
        what: str,
        phase: str,
    ) -> HttpResponse:
        limit = self.policy.max_body_bytes
        try:
            with self._http().stream(method, url, headers=headers, data=data) as response:
                if 300 <= response.status_code < 400:
                    raise TransportError(
                        f"The {what} answered with a redirect (HTTP "
                        f"{response.status_code}); redirects are refused.",
                        phase=phase,
                        reason="redirect_refused",
                    )
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise TransportError(
                        f"The {what} response exceeds the {limit}-byte limit.",
                        phase=phase,
                        reason="body_too_large",
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise TransportError(
                            f"The {what} response exceeds the {limit}-byte limit.",
                            phase=phase,
                            reason="body_too_large",
                        )
                    chunks.append(chunk)
                return HttpResponse(
                    status=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    content=b"".join(chunks),
                    url=url,
                )
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"The {what} did not answer within {self.policy.timeout:g} s.",
                phase=phase,
                reason="timeout",
            ) from exc
        except httpx.HTTPError as exc:
            raise TransportError(
                f"The {what} could not be reached ({type(exc).__name__}).",
                phase=phase,
                reason="connection_failed",
            ) from exc
