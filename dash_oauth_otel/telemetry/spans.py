"""The span catalog and the one helper that opens every span of the package.

Names follow the catalog in ``vignettes/opentelemetry.md``.  :func:`span` sets
``OK`` on success; on failure it sets ``ERROR``, ``error.type`` and an
``exception`` event whose message is the package's own (secret-free) message.
Telemetry problems are logged and never change the flow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span
from opentelemetry.trace import SpanKind
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from dash_oauth_otel._process import current_pid
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry._scope import get_tracer
from dash_oauth_otel.telemetry.correlation import context_attributes
from dash_oauth_otel.telemetry.correlation import current_trace_id
from dash_oauth_otel.telemetry.switches import tracing_enabled

__all__ = [
    "BACKCHANNEL_LOGOUT",
    "CALLBACK",
    "CALLBACK_VALIDATE",
    "CALLBACK_WORKER",
    "DISCOVERY",
    "DISCOVERY_HTTP",
    "FORM_POST",
    "FRONTCHANNEL_LOGOUT",
    "FORM_POST_BRIDGE",
    "JWKS",
    "JWKS_HTTP",
    "LOGIN_PAR",
    "LOGIN_PAR_HTTP",
    "LOGIN_REQUEST",
    "LOGOUT",
    "LOGOUT_RETURN",
    "MODULE_INIT",
    "REFRESH",
    "REFRESH_WORKER",
    "SESSION_END_REVOKE",
    "TOKEN_EXCHANGE",
    "TOKEN_EXCHANGE_HTTP",
    "TOKEN_INTROSPECT",
    "TOKEN_INTROSPECT_HTTP",
    "TOKEN_INTROSPECT_WORKER",
    "TOKEN_REVOKE",
    "TOKEN_REVOKE_HTTP",
    "TOKEN_REVOKE_WORKER",
    "TOKEN_VERIFY",
    "USERINFO",
    "USERINFO_HTTP",
    "Attributes",
    "record_error",
    "record_http_error",
    "set_attributes",
    "span",
]

_log = logging.getLogger("dash_oauth_otel.telemetry")

Attributes = Mapping[str, AttributeValue | None]

MODULE_INIT: Final = "dash_oauth_otel.module.init"
LOGIN_REQUEST: Final = "dash_oauth_otel.login.request"
"""Root span: state, PKCE and nonce minted, authorization URL built."""
LOGIN_PAR: Final = "dash_oauth_otel.login.par"
LOGIN_PAR_HTTP: Final = "dash_oauth_otel.login.par.http"
CALLBACK: Final = "dash_oauth_otel.callback"
"""Child of the login span recovered from the sealed state, else a root."""
FORM_POST: Final = "dash_oauth_otel.form_post"
FORM_POST_BRIDGE: Final = "dash_oauth_otel.form_post.bridge"
CALLBACK_VALIDATE: Final = "dash_oauth_otel.callback.validate"
"""One span per validation stage, told apart by ``oauth.phase``."""
CALLBACK_WORKER: Final = "dash_oauth_otel.callback.worker"
TOKEN_EXCHANGE: Final = "dash_oauth_otel.token.exchange"
TOKEN_EXCHANGE_HTTP: Final = "dash_oauth_otel.token.exchange.http"
TOKEN_VERIFY: Final = "dash_oauth_otel.token.verify"
USERINFO: Final = "dash_oauth_otel.userinfo"
USERINFO_HTTP: Final = "dash_oauth_otel.userinfo.http"
REFRESH: Final = "dash_oauth_otel.refresh"
REFRESH_WORKER: Final = "dash_oauth_otel.refresh.worker"
LOGOUT: Final = "dash_oauth_otel.logout"
LOGOUT_RETURN: Final = "dash_oauth_otel.logout.return"
SESSION_END_REVOKE: Final = "dash_oauth_otel.session.end.revoke"
TOKEN_REVOKE: Final = "dash_oauth_otel.token.revoke"
TOKEN_REVOKE_HTTP: Final = "dash_oauth_otel.token.revoke.http"
TOKEN_REVOKE_WORKER: Final = "dash_oauth_otel.token.revoke.worker"
TOKEN_INTROSPECT: Final = "dash_oauth_otel.token.introspect"
TOKEN_INTROSPECT_HTTP: Final = "dash_oauth_otel.token.introspect.http"
TOKEN_INTROSPECT_WORKER: Final = "dash_oauth_otel.token.introspect.worker"
DISCOVERY: Final = "dash_oauth_otel.discovery"
"""Beyond the seed catalog: OIDC discovery, so a slow or failing one is visible."""
DISCOVERY_HTTP: Final = "dash_oauth_otel.discovery.http"
JWKS: Final = "dash_oauth_otel.jwks"
"""Beyond the seed catalog: a JWKS fetch (initial, expired or on an unknown kid)."""
JWKS_HTTP: Final = "dash_oauth_otel.jwks.http"
BACKCHANNEL_LOGOUT: Final = "dash_oauth_otel.backchannel_logout"
"""Beyond the seed catalog: the provider POSTs a logout token (Back-Channel Logout 1.0)."""
FRONTCHANNEL_LOGOUT: Final = "dash_oauth_otel.frontchannel_logout"
"""Beyond the seed catalog: the provider frames the logout URI (Front-Channel Logout 1.0)."""


def _clean(attributes: Attributes | None) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    if attributes:
        for key, value in attributes.items():
            if value is not None:
                out[key] = value
    trace_id = current_trace_id()
    if trace_id is not None:
        out.setdefault(attr.TRACE_ID, trace_id)
    for key, value in context_attributes().items():
        out.setdefault(key, value)
    out.setdefault(attr.DASH_PROCESS_ID, current_pid())
    return out


def _fail(target: Span, error_type: str, message: str, reason: str, description: str) -> None:
    try:
        if not target.is_recording():
            return
        target.set_attribute(attr.ERROR_TYPE, error_type)
        target.add_event(
            "exception",
            {
                "exception.type": error_type,
                "exception.message": message,
                "dash_oauth_otel.error.reason": reason,
            },
        )
        target.set_status(Status(StatusCode.ERROR, description))
    except Exception:  # pragma: no cover - telemetry never breaks the flow
        _log.warning("could not record an error on a span", exc_info=True)


def record_error(target: Span, exc: BaseException) -> None:
    """Mark ``target`` as failed by ``exc`` without exposing anything secret.

    The ``exception`` event carries the type, a message and a reason code.  Only
    the package's own errors contribute their message (which never holds
    secrets) and reason (their wire code when they have no finer one); for any
    other exception the message only names its type, the reason is
    ``unexpected_error``.
    """
    error_type = type(exc).__qualname__
    if isinstance(exc, DashOAuthError):
        _fail(target, error_type, exc.message, exc.reason or exc.error, exc.error)
    else:
        _fail(target, error_type, f"{error_type} raised", "unexpected_error", error_type)


def record_http_error(target: Span, status: int, what: str) -> None:
    """Mark an outbound HTTP span failed by an answer with ``status`` (400 or above).

    ``error.type`` and the event's type are the status code (the HTTP semantic
    conventions), the reason is ``http_<status>``.

    :param what: What was called, e.g. ``test-idp token endpoint`` (no URL).
    """
    _fail(
        target, str(status), f"{what} answered HTTP {status}.", f"http_{status}", f"HTTP {status}"
    )


@contextmanager
def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    root: bool = False,
    parent: otel_context.Context | None = None,
    link_current: bool = True,
) -> Iterator[Span]:
    """Open a catalog span as the current span for the block.

    :param name: A catalog name (one of this module's constants).
    :param attributes: Attributes; ``None`` values are dropped.  The current
        correlation id is added as ``dash_oauth_otel.trace_id``.
    :param kind: ``CLIENT`` for the outbound ``.http`` spans.
    :param root: Start a new trace instead of nesting under the current span.
    :param parent: An explicit parent context (e.g. recovered from sealed state).
    :param link_current: Link the span that was current when ``parent`` or
        ``root`` places the new span elsewhere (off for a stage that belongs to
        an enclosing operation, not to the span it happens to run in).
    """
    if not tracing_enabled():
        yield trace.INVALID_SPAN
        return
    links: list[trace.Link] = []
    if (parent is not None or root) and link_current:
        # Placed outside the current trace (a new one, or the login's own): link
        # the span that was current, e.g. the server span of the request.
        current_context = trace.get_current_span().get_span_context()
        if current_context.is_valid:
            links.append(trace.Link(current_context))
    if parent is None and root:
        parent = otel_context.Context()
    try:
        cm = get_tracer().start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=_clean(attributes),
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        current = cm.__enter__()
    except Exception:  # pragma: no cover - telemetry never breaks the flow
        _log.warning("could not start span %s", name, exc_info=True)
        yield trace.INVALID_SPAN
        return
    try:
        yield current
    except BaseException as exc:
        record_error(current, exc)
        cm.__exit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        status = getattr(current, "status", None)
        if current.is_recording() and status is not None and status.status_code is StatusCode.UNSET:
            current.set_status(Status(StatusCode.OK))
        cm.__exit__(None, None, None)


def set_attributes(target: Span, attributes: Attributes) -> None:
    """Set attributes on ``target`` (``None`` values dropped), guarded by recording."""
    if target.is_recording():
        for key, value in attributes.items():
            if value is not None:
                target.set_attribute(key, value)
