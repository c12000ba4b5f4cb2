"""The module's routes: login, callback (query and ``form_post``), logout, signed-out, status.

Logout and the signed-out page live in :mod:`dash_oauth_otel.adapter.signout`.

The provider-initiated logout routes live in :mod:`.provider_logout`.

All live under ``<routes_pathname_prefix>oauth/``.  Responses that touch the
flow carry ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``;
the address bar never keeps ``code``, ``state``, ``iss`` or a bridge handle.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter import async_login
from dash_oauth_otel.adapter import signout
from dash_oauth_otel.adapter.layout import public_state
from dash_oauth_otel.adapter.pages import error_page
from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.adapter.pages import step_page
from dash_oauth_otel.adapter.provider_logout import backchannel_logout
from dash_oauth_otel.adapter.provider_logout import frontchannel_logout
from dash_oauth_otel.core.callback import check_callback_issuer
from dash_oauth_otel.core.callback import complete_callback
from dash_oauth_otel.core.callback import parse_callback_params
from dash_oauth_otel.core.login import prepare_call
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.state import verify_binding
from dash_oauth_otel.core.urls import same_origin_path
from dash_oauth_otel.errors import AuthorizationError
from dash_oauth_otel.errors import CallbackQueryError
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.metrics import instruments
from dash_oauth_otel.telemetry.redact import digest

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = [
    "FORM_POST_MAX_BYTES",
    "STORE_FAILURE_MESSAGE",
    "register",
    "store_failure_page",
]

_log = logging.getLogger("dash_oauth_otel")

FORM_POST_MAX_BYTES = 65536
"""Largest ``form_post`` body accepted."""
_HANDLE_PREFIX = "formpost:"
_HANDLE_TTL = 120.0
_FORM_STATUS = {"unsupported_media_type": 415, "body_too_large": 413}


def register(module: DashOAuth, server: flask.Flask) -> None:
    """Add the module's routes to ``server``."""
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
    for name, endpoint, view, methods in rules:
        server.add_url_rule(
            module.route_path(name),
            endpoint=f"dash_oauth_otel.{endpoint}",
            view_func=view,
            methods=methods,
        )


# -- helpers -------------------------------------------------------------------


def _redirect(location: str, status: int = 303) -> Response:
    return no_store(flask.redirect(location, code=status))


def _handles(module: DashOAuth) -> Sealer:
    return Sealer(module._secret, "form_post", context=module.client.record_context)


def _handle_key(handle: str) -> str:
    return _HANDLE_PREFIX + hashlib.sha256(handle.encode()).hexdigest()


def _stash(module: DashOAuth, params: Mapping[str, str]) -> str:
    """Keep callback parameters under a one-time handle; return the handle."""
    handle = secrets.token_urlsafe(32)
    sealed = _handles(module).seal({"p": dict(params)})
    ttl = min(_HANDLE_TTL, module.client.state_ttl)
    module.client.state_store.set(_handle_key(handle), sealed.encode(), ttl)  # type: ignore[union-attr]
    return handle


def _take(module: DashOAuth, handle: str) -> dict[str, str] | None:
    """Consume a handle once; ``None`` if unknown, used or expired."""
    if not handle or len(handle) > 128:
        return None
    with spans.span(
        spans.FORM_POST_BRIDGE,
        {
            **module.client.telemetry_attributes(),
            attr.OAUTH_PHASE: "form_post.callback_lookup",
            attr.DASH_MODULE_ID: module.module_id,
            "oauth.form_post.handle_digest": digest(handle),
        },
        root=True,
    ):
        raw = module.client.state_store.take(_handle_key(handle))  # type: ignore[union-attr]
        if raw is None:
            return None
        try:
            data = _handles(module).unseal(raw.decode("ascii", "replace"))
        except StateError:
            return None
        params = data.get("p")
        if not isinstance(params, dict):
            return None
        return {str(k): str(v) for k, v in params.items()}


def _failure_page(
    module: DashOAuth, exc: DashOAuthError, *, next_path: str | None = None
) -> Response:
    if isinstance(exc, StoreError):
        return store_failure_page(module, exc)
    description = exc.message
    if isinstance(exc, AuthorizationError) and exc.description:
        description = f"{exc.message} {exc.description}"
    status = 502 if exc.error in ("token_exchange_error", "transport_error", "http_error") else 400
    return error_page(
        error=exc.error,
        description=description,
        trace_id=exc.trace_id,
        retry_url=module.login_url(next_path),
        clean_path=module.url("callback"),
        status=status,
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


# -- login ---------------------------------------------------------------------


def login(module: DashOAuth) -> Response:
    """Start a login: set the binding cookie and send the browser to the provider.

    Coming here is the user asking to sign in, so the signed-out marker goes.
    """
    request = flask.request
    next_path = same_origin_path(request.args.get("next"), default=module.home)
    reauth = request.args.get("reauth") == "1"
    if not reauth:
        outcome = module.lifecycle.resolve(module.cookies.session_id(request))
        if outcome.record is not None:
            return _redirect(next_path, 302)
    response = _redirect(module.home, 302)
    if module.cookies.signed_out(request):
        module.cookies.clear_signed_out(response)
    binding = module.cookies.binding(request)
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
    try:
        request_info = prepare_call(
            module.client, binding, app_data={"next": next_path}, max_age=0 if reauth else None
        )
    except DashOAuthError as exc:
        return _failure_page(module, exc, next_path=next_path)
    response.headers["Location"] = request_info.url
    return response


# -- callback ------------------------------------------------------------------


def callback(module: DashOAuth) -> Response:
    """The redirect URI: a provider redirect (GET) or a ``form_post`` (POST)."""
    if flask.request.method == "POST":
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
        params = _take(module, handle)
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
            return _failure_page(module, exc)
        return _finish(module, params, binding)
    if strict_step:
        # SameSite=Strict cookies do not come with the provider's cross-site
        # redirect: stash the response and let the browser take one same-origin step.
        try:
            parsed = parse_callback_params(request.args)
        except DashOAuthError as exc:
            return _failure_page(module, exc)
        stashed = _stash(module, parsed)
        return step_page(f"{clean}?{urlencode({'fp': stashed, 'step': '1'})}", clean_path=clean)
    return _finish(module, request.args, binding)


def _finish(module: DashOAuth, params: Any, binding: str | None) -> Response:
    if module.dispatcher is not None:
        return async_login.start(module, params, binding)
    try:
        token, app_data = complete_callback(module.client, params, binding or "")
    except DashOAuthError as exc:
        return login_failed(module, exc, next_path=page_of_state(module, params))
    return establish_session(module, token, app_data)


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
    return _failure_page(module, exc, next_path=next_path)


def establish_session(module: DashOAuth, token: Any, app_data: Mapping[str, str]) -> Response:
    """Create the session of a completed login and send the browser to its page."""
    request = flask.request
    # Session fixation: a login always gets a new session id; an older session
    # of this browser ends (its tokens belonged to whoever logged in before).
    previous = module.sessions.load(module.cookies.session_id(request))
    if previous is not None:
        module.lifecycle.end(previous, "replaced_by_login")
    claims = token.id_token_claims or {}
    auth_time = claims.get("auth_time")
    record = module.sessions.create(
        token, auth_time=float(auth_time) if isinstance(auth_time, (int, float)) else None
    )
    audit.emit(
        audit.AUDIT_SESSION_STARTED,
        **module.client.audit_fields(),
        module_id=module.module_id,
        session_id_digest=record.sid_digest,
        sub_digest=digest(token.subject),
    )
    found = instruments()
    if found is not None:
        found.active_sessions.add(1, {attr.OAUTH_PROVIDER_NAME: module.client.provider.name})
    target = same_origin_path(app_data.get("next"), default=module.home)
    response = _redirect(target, 303)
    module.cookies.set_session(response, record.sid)
    # The binding cookie stays until it expires: another tab of this browser may
    # still be finishing its own login with it.  Logout clears it.
    return response


def form_post(module: DashOAuth) -> Response:
    """``response_mode=form_post``: validate, stash under a handle, 303 to a GET."""
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
            params = _read_form(request)
            check_callback_issuer(module.client, params)
            payload = open_state(module.client, params["state"])
            spans.set_attributes(current, {attr.TRACE_ID: payload.trace_id})
            verify_binding(module.client, payload)
        except DashOAuthError as exc:
            exc.phase = exc.phase or "form_post.post"
            spans.record_error(current, exc)
            audit.emit(
                audit.AUDIT_CALLBACK_VALIDATION_FAILED,
                **module.client.audit_fields(),
                phase="form_post_request_validation",
                error_class=type(exc).__qualname__,
                reason=exc.reason,
            )
            status = {"unsupported_media_type": 415, "body_too_large": 413}.get(
                exc.reason or "", 400
            )
            page = _failure_page(module, exc)
            page.status_code = status
            return page
        handle = _stash(module, params)
    return _redirect(f"{clean}?{urlencode({'fp': handle})}", 303)


def _read_form(request: flask.Request) -> dict[str, str]:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise CallbackQueryError(
            "The callback POST must be application/x-www-form-urlencoded.",
            reason="unsupported_media_type",
        )
    length = request.content_length
    if length is not None and length > FORM_POST_MAX_BYTES:
        raise CallbackQueryError("The callback POST is too large.", reason="body_too_large")
    body = request.stream.read(FORM_POST_MAX_BYTES + 1)
    if len(body) > FORM_POST_MAX_BYTES:
        raise CallbackQueryError("The callback POST is too large.", reason="body_too_large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=32
        )
    except (UnicodeDecodeError, ValueError):
        raise CallbackQueryError("The callback POST is malformed.", reason="param_type") from None
    return parse_callback_params(pairs)


# -- status ----------------------------------------------------------------------


def status(module: DashOAuth) -> Response:
    """The non-secret session state as JSON (for pages and async logins)."""
    login = flask.request.args.get("login")
    if login is not None:
        return no_store(flask.jsonify({"login": async_login.progress(module, login)}))
    outcome = module.lifecycle.resolve(module.cookies.session_id(flask.request))
    body = public_state(module, outcome.record, error=outcome.error)
    return no_store(flask.jsonify(body))
