"""Failure answers of the module's routes: the error page of a failed login, the store's 503.

A failed login's page names the error and its trace id and offers "Try
again" (back to the page the login was started for, when its state says so);
a store failure's page or JSON keeps the store's details for the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.pages import error_page
from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.urls import same_origin_path
from dash_oauth_otel.errors import AuthorizationError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.telemetry import audit

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = [
    "STORE_FAILURE_MESSAGE",
    "failure_page",
    "login_failed",
    "page_of_state",
    "store_failure_page",
]

_log = logging.getLogger("dash_oauth_otel")


def failure_page(
    module: DashOAuth, exc: DashOAuthError, *, next_path: str | None = None
) -> Response:
    """The page of a failed step, with the status of the error's class.

    400 for bad input, 502 for a failure of the provider, 503 of the store (see
    :attr:`~dash_oauth_otel.errors.DashOAuthError.http_status`).
    """
    if isinstance(exc, StoreError):
        return store_failure_page(module, exc)
    if not isinstance(exc, AuthorizationError):
        # The provider's refusal was reported where it arrived (phase
        # callback.provider_error); every other error shown on a page, here.
        audit.emit(
            audit.ERROR,
            **module.client.audit_fields(),
            phase=exc.phase or "callback",
            reason=exc.reason or exc.error,
            error_class=type(exc).__qualname__,
            message=exc.message,
            trace_id=exc.trace_id,
        )
    description = exc.message
    if isinstance(exc, AuthorizationError) and exc.description:
        description = f"{exc.message} {exc.description}"
    return error_page(
        error=exc.error,
        description=description,
        trace_id=exc.trace_id,
        retry_url=module.login_url(next_path),
        clean_path=module.url("callback"),
        status=exc.http_status,
    )


STORE_FAILURE_MESSAGE = (
    "The app cannot reach the store of its sign-ins right now; please try again in a moment."
)


def store_failure_page(module: DashOAuth, exc: StoreError) -> Response:
    """Answer a request the store failed: the details go to the log, never to the browser.

    A store's message names its location and the backend's own words (a file
    path, a server address), which are the operator's business.
    """
    _log.error("the store failed (trace id %s): %s", exc.trace_id, exc.message)
    audit.emit(
        audit.ERROR,
        **module.client.audit_fields(),
        phase=exc.phase or "store",
        reason=exc.reason or "store_unavailable",
        error_class=type(exc).__qualname__,
        message=STORE_FAILURE_MESSAGE,
    )
    if flask.request.path.endswith("/_dash-update-component") or not _wants_page(flask.request):
        response = flask.jsonify({"error": exc.error, "message": STORE_FAILURE_MESSAGE})
        response.status_code = 503
        return no_store(response)
    return error_page(
        error=exc.error,
        description=STORE_FAILURE_MESSAGE,
        trace_id=exc.trace_id,
        retry_url=_retry_after_store_failure(module, flask.request),
        clean_path=flask.request.path,
        status=503,
        title="Temporarily unavailable",
    )


def _retry_after_store_failure(module: DashOAuth, request: flask.Request) -> str:
    # A module route (a callback with its code, a logout) is not repeated: sign in again.
    if request.method != "GET" or request.path.startswith(module.url("")):
        return module.login_url()
    return request.full_path.rstrip("?")


def _wants_page(request: flask.Request) -> bool:
    return request.accept_mimetypes.accept_html


def page_of_state(module: DashOAuth, params: Any) -> str | None:
    """The page a failed login was started for, so that "Try again" returns there.

    Read from the callback's state only when it opens with this client's key
    (the seal authenticates it) and names this client; the path is checked
    again as at login.  Anything else gives ``None`` (the retry goes home).
    """
    state = params.get("state") if isinstance(params, Mapping) else None
    try:
        payload = open_state(module.client, state)
    except DashOAuthError:
        return None
    if payload.client_id != module.client.client_id:
        return None
    found = (payload.app or {}).get("next")
    return same_origin_path(found, default=module.home) if found else None


def login_failed(
    module: DashOAuth, exc: DashOAuthError, *, next_path: str | None = None
) -> Response:
    """Audit a failed login and show its error page (its retry link returns to ``next_path``)."""
    audit.emit(
        audit.AUDIT_LOGIN_FAILED,
        **module.client.audit_fields(),
        phase=exc.phase,
        error_class=type(exc).__qualname__,
        reason=exc.reason,
        trace_id=exc.trace_id,
    )
    return failure_page(module, exc, next_path=next_path)
