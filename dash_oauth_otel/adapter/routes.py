"""The module's routes: login, callback (query and ``form_post``), logout, signed-out, status.

Logout and the signed-out page live in :mod:`dash_oauth_otel.adapter.signout`,
the ``form_post`` bridge in :mod:`.bridge`, the login bounds in :mod:`.limits`,
the answers to unknown routes, wrong methods and ``HEAD`` in :mod:`.refusals`,
failure pages in :mod:`.failures`.

The provider-initiated logout routes live in :mod:`.provider_logout`.

All live under ``<routes_pathname_prefix>oauth/``.  Responses that touch the
flow carry ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``;
the address bar never keeps ``code``, ``state``, ``iss`` or a bridge handle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlencode

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter import async_login
from dash_oauth_otel.adapter import bridge
from dash_oauth_otel.adapter import limits
from dash_oauth_otel.adapter import refusals
from dash_oauth_otel.adapter import signout
from dash_oauth_otel.adapter.bridge import FORM_POST_MAX_BYTES
from dash_oauth_otel.adapter.failures import STORE_FAILURE_MESSAGE
from dash_oauth_otel.adapter.failures import failure_page
from dash_oauth_otel.adapter.failures import login_failed
from dash_oauth_otel.adapter.failures import page_of_state
from dash_oauth_otel.adapter.failures import store_failure_page
from dash_oauth_otel.adapter.layout import public_state
from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.adapter.pages import step_page
from dash_oauth_otel.adapter.provider_logout import backchannel_logout
from dash_oauth_otel.adapter.provider_logout import frontchannel_logout
from dash_oauth_otel.core.callback import ValidatedCallback
from dash_oauth_otel.core.callback import exchange_validated
from dash_oauth_otel.core.callback import parse_callback_params
from dash_oauth_otel.core.callback import run_callback
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.login import prepare_call
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.core.urls import same_origin_path
from dash_oauth_otel.errors import CallbackQueryError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import current_trace_id
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.redact import digest

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = [
    "FORM_POST_MAX_BYTES",
    "STORE_FAILURE_MESSAGE",
    "establish_session",
    "login_failed",
    "page_of_state",
    "register",
    "store_failure_page",
]

_log = logging.getLogger("dash_oauth_otel")

_FORM_STATUS = {"unsupported_media_type": 415, "body_too_large": 413}


def register(module: DashOAuth, server: flask.Flask) -> None:
    """Add the module's routes to ``server``, and a ``404`` for any other ``oauth/`` path."""
    rules: list[tuple[str, str, Any, list[str]]] = [
        ("login", "login", lambda: login(module), ["GET"]),
        ("callback", "callback", lambda: callback(module), ["GET", "POST"]),
        ("logout", "logout", lambda: signout.logout(module), ["POST"]),
        ("signed-out", "signed_out", lambda: signout.signed_out(module), ["GET"]),
        ("status", "status", lambda: status(module), ["GET"]),
        # Provider-initiated logout (OpenID Back-Channel / Front-Channel Logout 1.0).
        ("backchannel-logout", "backchannel_logout", lambda: backchannel_logout(module), ["POST"]),
        (
            "frontchannel-logout",
            "frontchannel_logout",
            lambda: frontchannel_logout(module),
            ["GET"],
        ),
    ]
    allowed = {name: methods for name, _endpoint, _view, methods in rules}
    for name, endpoint, view, methods in rules:
        server.add_url_rule(
            module.route_path(name),
            endpoint=f"dash_oauth_otel.{endpoint}",
            view_func=_without_head(view),
            methods=methods,
        )

    def other(rest: str = "") -> Response:
        if rest in allowed:
            return refusals.not_allowed(module, allowed[rest])
        return refusals.not_found(module)

    for rule in (module.route_path(""), module.route_path("<path:rest>")):
        server.add_url_rule(
            rule, endpoint=f"dash_oauth_otel.other:{rule}", view_func=other, methods=_ANY_METHOD
        )


_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _without_head(view: Any) -> Any:
    """``HEAD`` of a module route does nothing (Flask would run the ``GET`` view)."""

    def serve() -> Response:
        if flask.request.method == "HEAD":
            return refusals.head_answer()
        response: Response = view()
        return response

    return serve


# -- helpers -------------------------------------------------------------------


def _redirect(location: str, status: int = 303) -> Response:
    return no_store(flask.redirect(location, code=status))


# -- login ---------------------------------------------------------------------


def login(module: DashOAuth) -> Response:
    """Start a login: set the binding cookie and send the browser to the provider.

    Coming here is the user asking to sign in, so the signed-out marker goes.
    A browser with a session goes straight to its page; any other start is
    rate-limited (:mod:`.limits`) and makes at most one provider call (PAR).
    """
    request = flask.request
    next_path = same_origin_path(request.args.get("next"), default=module.home)
    reauth = request.args.get("reauth") == "1"
    if not reauth:
        outcome = module.lifecycle.resolve(module.cookies.session_id(request))
        if outcome.record is not None:
            return _redirect(next_path, 302)
    refusal = limits.admit_login(module, next_path)
    if refusal is not None:
        return refusal
    response = _redirect(module.home, 302)
    if module.cookies.signed_out(request):
        module.cookies.clear_signed_out(response)
    binding = module.cookies.binding(request)
    fresh = False
    try:
        check_browser_token(binding)
        assert binding is not None  # noqa: S101 - checked above
        module.cookies.reissue_binding(response, binding)
    except InputError:
        if binding is not None:
            audit.emit(
                audit.AUDIT_INVALID_BROWSER_TOKEN,
                **module.client.audit_fields(),
                reason="malformed_replaced",
                length=len(binding),
            )
        binding = module.cookies.issue_binding(response)
        fresh = True
    try:
        request_info = prepare_call(
            module.client, binding, app_data={"next": next_path}, max_age=0 if reauth else None
        )
        limits.remember_pending(module, binding, request_info, fresh=fresh)
    except DashOAuthError as exc:
        return failure_page(module, exc, next_path=next_path)
    response.headers["Location"] = request_info.url
    return response


# -- callback ------------------------------------------------------------------


def callback(module: DashOAuth) -> Response:
    """The redirect URI: a provider redirect (GET) or a ``form_post`` (POST).

    The POST is served only when the client asks for ``response_mode=form_post``.
    """
    if flask.request.method == "POST":
        if module.client.response_mode != "form_post":
            return refusals.not_allowed(module, ["GET"])
        return form_post(module)
    request = flask.request
    clean = module.url("callback")
    binding = module.cookies.binding(request)
    strict_step = (
        module.options.cookie_samesite == "Strict"
        and binding is None
        and "step" not in request.args
    )
    completed = request.args.get("complete")
    if completed is not None:
        return async_login.complete(module, completed, binding)
    handle = request.args.get("fp")
    if handle is not None:
        if strict_step:
            return step_page(f"{clean}?{urlencode({'fp': handle, 'step': '1'})}", clean_path=clean)
        params = bridge.take(module, handle)
        if params is None:
            exc = CallbackQueryError(
                "This sign-in response was already used or has expired; please sign in again.",
                phase="form_post.callback_lookup",
                reason="unknown_form_post_handle",
            )
            audit.emit(
                audit.AUDIT_CALLBACK_QUERY_REJECTED,
                **module.client.audit_fields(),
                phase=exc.phase,
                reason=exc.reason,
                handle_digest=digest(handle),
            )
            return failure_page(module, exc)
        return _finish(module, params, binding)
    if strict_step:
        # SameSite=Strict cookies do not come with the provider's cross-site
        # redirect: keep the response (once its state checks out) and let the
        # browser take one same-origin step.
        try:
            stashed, _ = bridge.stash(module, parse_callback_params(request.args), None)
        except DashOAuthError as exc:
            _audit_refused_response(module, exc, "callback_step_validation")
            return failure_page(module, exc, next_path=page_of_state(module, request.args))
        return step_page(f"{clean}?{urlencode({'fp': stashed, 'step': '1'})}", clean_path=clean)
    return _finish(module, request.args, binding)


def _finish(module: DashOAuth, params: Any, binding: str | None) -> Response:
    if module.dispatcher is not None:
        return async_login.start(module, params, binding)
    try:
        token, app_data, trace_id = run_callback(
            module.client, params, binding or "", _exchange_with_trace_id
        )
    except DashOAuthError as exc:
        return login_failed(module, exc, next_path=page_of_state(module, params))
    return establish_session(module, token, app_data, trace_id)


def _exchange_with_trace_id(
    client: OAuthClient, validated: ValidatedCallback
) -> tuple[OAuthToken, Mapping[str, str], str | None]:
    token, app_data = exchange_validated(client, validated)
    return token, app_data, current_trace_id()


def establish_session(
    module: DashOAuth, token: Any, app_data: Mapping[str, str], trace_id: str | None = None
) -> Response:
    """Create the session of a completed login and send the browser to its page.

    :param trace_id: The login's correlation id, kept with the session so that
        its later spans and events join the login.
    """
    with trace_id_scope(trace_id) as joined:
        return _establish(module, token, app_data, joined)


def _establish(
    module: DashOAuth, token: Any, app_data: Mapping[str, str], trace_id: str
) -> Response:
    request = flask.request
    # Session fixation: a login always gets a new session id; an older session
    # of this browser ends (its tokens belonged to whoever logged in before).
    previous = module.sessions.load(module.cookies.session_id(request))
    if previous is not None:
        module.lifecycle.end(previous, "replaced_by_login")
    claims = token.id_token_claims or {}
    auth_time = claims.get("auth_time")
    record = module.lifecycle.start(
        token,
        auth_time=float(auth_time) if isinstance(auth_time, (int, float)) else None,
        trace_id=trace_id,
    )
    target = same_origin_path(app_data.get("next"), default=module.home)
    response = _redirect(target, 303)
    module.cookies.set_session(response, record.sid)
    # The binding cookie stays until it expires: another tab of this browser may
    # still be finishing its own login with it.  Logout clears it.
    return response


def _audit_refused_response(module: DashOAuth, exc: DashOAuthError, phase: str) -> None:
    audit.emit(
        audit.AUDIT_CALLBACK_VALIDATION_FAILED,
        **module.client.audit_fields(),
        phase=phase,
        error_class=type(exc).__qualname__,
        reason=exc.reason,
    )


def form_post(module: DashOAuth) -> Response:
    """``response_mode=form_post``: validate, stash under the state's handle, 303 to a GET."""
    request = flask.request
    clean = module.url("callback")
    with spans.span(
        spans.FORM_POST,
        {
            **module.client.telemetry_attributes(),
            attr.OAUTH_PHASE: "form_post.post",
            attr.OAUTH_RESPONSE_MODE: "form_post",
            attr.DASH_MODULE_ID: module.module_id,
        },
        root=True,
    ) as current:
        try:
            params = bridge.read_form(request)
            handle, trace_id = bridge.stash(module, params, module.cookies.binding(request))
            spans.set_attributes(current, {attr.TRACE_ID: trace_id})
        except DashOAuthError as exc:
            exc.phase = exc.phase or "form_post.post"
            spans.record_error(current, exc)
            _audit_refused_response(module, exc, "form_post_request_validation")
            page = failure_page(module, exc)
            page.status_code = _FORM_STATUS.get(exc.reason or "", 400)
            return page
    return _redirect(f"{clean}?{urlencode({'fp': handle})}", 303)


# -- status ----------------------------------------------------------------------


def status(module: DashOAuth) -> Response:
    """The non-secret session state as JSON (for pages and async logins)."""
    login = flask.request.args.get("login")
    if login is not None:
        return no_store(flask.jsonify({"login": async_login.progress(module, login)}))
    outcome = module.lifecycle.resolve(module.cookies.session_id(flask.request))
    body = public_state(module, outcome.record, error=outcome.error)
    return no_store(flask.jsonify(body))
