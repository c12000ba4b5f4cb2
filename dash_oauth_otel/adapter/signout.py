"""Signing out: ``POST oauth/logout``, the provider's end-session request, ``oauth/signed-out``.

A sign-out holds for the whole browser until its user asks to sign in again:

* the logout ends the session (revoking its tokens) and sets the signed-out
  marker cookie; while it is there the guard shows the signed-out page instead
  of sending the browser to the provider (whose single sign-on session could
  otherwise sign it straight back in);
* the app's other tabs hear of it on a same-origin ``BroadcastChannel`` (the
  module's pages post, every app page listens) and leave the signed-in page;
* the provider's session ends by OpenID RP-Initiated Logout 1.0: an
  auto-submitted POST form carrying ``id_token_hint``, ``client_id``,
  ``post_logout_redirect_uri`` (this module's ``oauth/signed-out``) and a
  fresh ``state``, so the ID token never appears in a URL.  The ``state`` is
  kept for a short time, bound to the browser, and checked when the provider
  returns; a missing or foreign ``state`` gets the same signed-out page, and
  nothing in such a query is acted on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import flask
from opentelemetry.trace import Span
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter import async_login
from dash_oauth_otel.adapter.pages import end_session_page
from dash_oauth_otel.adapter.pages import error_page
from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.adapter.pages import signed_out_page
from dash_oauth_otel.adapter.pages import step_page
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.urls import same_origin_path
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import set_trace_id
from dash_oauth_otel.telemetry.redact import digest

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = [
    "LOGOUT_STATE_TTL",
    "channel_name",
    "logout",
    "signed_out",
    "signed_out_response",
    "signed_out_url",
]

LOGOUT_STATE_TTL = 600.0
"""Seconds a provider logout's ``state`` stays valid (the user may linger on its page)."""
_STATE_PREFIX = "logout_state:"
_MAX_STATE_CHARS = 256


# -- shared with the guard and the layout -------------------------------------------------


def channel_name(module: DashOAuth) -> str:
    """The ``BroadcastChannel`` on which this app's tabs hear of a sign-out.

    Named after the client and the app's path, so two apps on one origin do not
    send each other's tabs away.
    """
    return f"dash_oauth_otel:{module.client.client_id}:{module.home}"


def _after_sign_in(module: DashOAuth) -> str:
    return module.home + module.options.post_logout_path.lstrip("/")


def signed_out_url(module: DashOAuth, next_path: str | None = None) -> str:
    """The signed-out page; its "Sign in" returns to ``next_path``."""
    target = next_path or _after_sign_in(module)
    return f"{module.url('signed-out')}?{urlencode({'next': target})}"


def signed_out_response(module: DashOAuth, next_path: str, *, status: int = 401) -> Response:
    """The signed-out page in place of a page of the app (the guard's answer)."""
    return signed_out_page(module.login_url(next_path), channel=channel_name(module), status=status)


# -- POST oauth/logout --------------------------------------------------------------------------


def _redirect(location: str) -> Response:
    return no_store(flask.redirect(location, code=303))


def _same_origin_request(module: DashOAuth, request: flask.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == module.origin
    referer = request.headers.get("Referer")
    return referer is None or referer.startswith(module.origin + "/")


def _csrf_refusal(module: DashOAuth, record: SessionRecord, current: Span) -> Response | None:
    """``None`` if the logout request carries the session's CSRF token from this origin."""
    request = flask.request
    presented = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = module.csrf_token(record)
    if _same_origin_request(module, request) and hmac.compare_digest(
        presented.encode(), expected.encode()
    ):
        return None
    message = "A logout request without a valid CSRF token or origin was refused."
    spans.record_error(current, InputError(message, phase="logout", reason="csrf_rejected"))
    audit.emit(
        audit.ERROR,
        **module.client.audit_fields(),
        phase="logout",
        reason="csrf_rejected",
        message=message,
    )
    return error_page(
        error="csrf_rejected",
        description="This logout request did not come from the app.",
        trace_id=None,
        retry_url=module.home,
        clean_path=request.path,
        status=403,
    )


def logout(module: DashOAuth) -> Response:
    """End the session (revoking its tokens), mark the browser signed out, end the provider's.

    With an end-session endpoint (and ``provider_logout``), the answer is the
    auto-submitted POST to it; otherwise a redirect to the signed-out page.
    """
    request = flask.request
    with spans.span(
        spans.LOGOUT,
        {
            **module.client.telemetry_attributes(),
            attr.OAUTH_PHASE: "logout",
            attr.DASH_MODULE_ID: module.module_id,
        },
        root=True,
    ) as current:
        same_origin = _same_origin_request(module, request)
        binding = module.cookies.binding(request)
        record = module.sessions.load(module.cookies.session_id(request))
        response: Response | None = None
        if record is not None and record.trace_id:
            # The logout joins the session's login.
            set_trace_id(record.trace_id)
            spans.set_attributes(current, {attr.TRACE_ID: record.trace_id})
        if record is not None:
            refusal = _csrf_refusal(module, record, current)
            if refusal is not None:
                return refusal  # a refused logout writes nothing
        if binding and same_origin:
            async_login.cancel(module, binding)  # a login still in a worker must not land
        if record is not None:
            module.lifecycle.end(record, "logout", revoke=True)
            audit.emit(
                audit.AUDIT_LOGOUT,
                **module.client.audit_fields(),
                reason="manual_logout",
                session_id_digest=record.sid_digest,
            )
            end_session = module.client.provider.end_session_endpoint
            if module.options.provider_logout and end_session:
                response = _end_session(module, record, end_session)
            spans.set_attributes(current, {"oauth.logout.end_session": response is not None})
        if response is None:
            response = _redirect(signed_out_url(module))
            module.cookies.clear_binding(response)
    module.cookies.clear_session(response)
    if record is not None or same_origin:
        module.cookies.set_signed_out(response)
    return response


def _state_key(state: str) -> str:
    return _STATE_PREFIX + hashlib.sha256(state.encode()).hexdigest()


def _states(module: DashOAuth) -> Sealer:
    return Sealer(module._secret, "logout_state", context=module.client.record_context)


def _end_session(module: DashOAuth, record: SessionRecord, endpoint: str) -> Response:
    """The POST form to the provider's end-session endpoint, its ``state`` kept for the return."""
    state = secrets.token_urlsafe(32)
    fields: dict[str, str] = {}
    if module.options.logout_id_token_hint and record.token.id_token:
        fields["id_token_hint"] = record.token.id_token
    fields["client_id"] = module.client.client_id
    fields["post_logout_redirect_uri"] = module.origin + module.url("signed-out")
    fields["state"] = state
    response = end_session_page(endpoint, fields, channel=channel_name(module))
    # A fresh binding: the one a login used is done with, and the state is bound to this one.
    binding = module.cookies.issue_binding(response)
    sealed = _states(module).seal(
        {"c": module.client.client_id, "b": hashlib.sha256(binding.encode()).hexdigest()}
    )
    module.client.state_store.set(_state_key(state), sealed.encode(), LOGOUT_STATE_TTL)  # type: ignore[union-attr]
    return response


# -- GET oauth/signed-out -----------------------------------------------------------------------


def _check_return(module: DashOAuth, state: str | None, binding: str | None) -> tuple[bool, str]:
    """Whether the provider's return carries the ``state`` this browser sent, and why not."""
    if not state:
        return False, "state_missing"
    if len(state) > _MAX_STATE_CHARS:
        return False, "state_unknown"
    raw = module.client.state_store.take(_state_key(state))  # type: ignore[union-attr]
    if raw is None:
        return False, "state_unknown"
    try:
        kept = _states(module).unseal(raw.decode("ascii", "replace"))
    except StateError:
        return False, "state_unknown"
    if kept.get("c") != module.client.client_id:
        return False, "state_unknown"
    presented = hashlib.sha256(binding.encode()).hexdigest() if binding else ""
    if not hmac.compare_digest(presented, str(kept.get("b", ""))):
        return False, "browser_mismatch"
    return True, "state_matched"


def _audit_return(module: DashOAuth, state: str | None, binding: str | None) -> None:
    with spans.span(
        spans.LOGOUT_RETURN,
        {
            **module.client.telemetry_attributes(),
            attr.OAUTH_PHASE: "logout.return",
            attr.DASH_MODULE_ID: module.module_id,
        },
        root=True,
    ) as current:
        matched, reason = _check_return(module, state, binding)
        spans.set_attributes(
            current, {"oauth.logout.state_match": matched, "oauth.logout.reason": reason}
        )
        audit.emit(
            audit.AUDIT_LOGOUT_RETURN,
            **module.client.audit_fields(),
            state_match=matched,
            reason=reason,
            state_digest=digest(state) if state else None,
        )


def signed_out(module: DashOAuth) -> Response:
    """The signed-out page: the provider's post-logout return, and where other tabs go.

    A request with a ``state``, or with no query at all, is the provider's
    return: its ``state`` is checked and audited, and nothing else in the
    query is used.  ``next`` (same-origin only) is where "Sign in" returns to.
    A browser that still has a session is sent to the app instead.
    """
    request = flask.request
    args = request.args
    binding = module.cookies.binding(request)
    provider_return = "state" in args or not set(args) - {"step"}
    if (
        provider_return
        and module.options.cookie_samesite == "Strict"
        and binding is None
        and "step" not in args
    ):
        # SameSite=Strict cookies are not sent with the provider's cross-site redirect.
        here = f"{module.url('signed-out')}?{urlencode({**args, 'step': '1'})}"
        return step_page(here, clean_path=module.url("signed-out"), title="Signing you out")
    if provider_return:
        _audit_return(module, args.get("state"), binding)
    next_path = same_origin_path(None if provider_return else args.get("next"), default="")
    outcome = module.lifecycle.resolve(module.cookies.session_id(request))
    if outcome.record is not None:
        return _redirect(next_path or module.home)
    clean = signed_out_url(module, next_path or None)
    return signed_out_page(
        module.login_url(next_path or _after_sign_in(module)),
        channel=channel_name(module),
        clean_path=clean,
    )
