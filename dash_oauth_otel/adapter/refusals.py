"""Answers to module requests that do nothing: unknown routes, wrong methods, ``HEAD``.

Under ``<prefix>oauth/`` only the module's own routes exist: any other path
answers ``404`` (not the app's page), a known route asked with another method
``405`` with ``Allow``, each a small ``no-store`` answer with an
``audit_route_refused`` event and nothing stored.  ``HEAD`` of a module route
runs none of it (a link checker or a prefetch must not start a login or
consume a state): it answers ``200`` with no body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.errors import RouteError
from dash_oauth_otel.telemetry import audit

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = ["head_answer", "not_allowed", "not_found"]


def _refuse(module: DashOAuth, exc: RouteError, status: int) -> Response:
    request = flask.request
    audit.emit(
        audit.AUDIT_ROUTE_REFUSED,
        **module.client.audit_fields(),
        phase=exc.phase,
        reason=exc.reason,
        error_class=type(exc).__qualname__,
        method=request.method,
        http_status=status,
    )
    response = flask.jsonify({"error": exc.error, "message": exc.message})
    response.status_code = status
    return no_store(response)


def not_found(module: DashOAuth) -> Response:
    """``404`` for a path under ``oauth/`` that is no module route."""
    exc = RouteError("There is no such sign-in route.", phase="route", reason="unknown_route")
    return _refuse(module, exc, 404)


def not_allowed(module: DashOAuth, allowed: Sequence[str]) -> Response:
    """``405`` for a module route asked with a method it does not serve."""
    exc = RouteError(
        "This sign-in route does not accept this method.",
        method_not_allowed=True,
        phase="route",
        reason="method_not_allowed",
    )
    response = _refuse(module, exc, 405)
    response.headers["Allow"] = ", ".join(allowed)
    return response


def head_answer() -> Response:
    """The answer to ``HEAD`` of a module route: ``200``, no body, nothing done."""
    return no_store(Response(status=200))
