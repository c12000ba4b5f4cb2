"""Logout started by the provider: OpenID Connect Back-Channel and Front-Channel Logout 1.0.

* ``POST <prefix>oauth/backchannel-logout`` (register it at the provider as
  the client's ``backchannel_logout_uri``): the provider POSTs a signed
  ``logout_token`` when the user's session there ends.  The token is validated
  (:mod:`dash_oauth_otel.core.logout_token`), its ``jti`` is remembered so that
  it works once, and every session of this app with that provider ``sid`` (or,
  without one, of that subject) ends in every process; the answer is ``200``
  with an empty body, or ``400`` with a JSON error (Back-Channel Logout 1.0
  §2.8).
* ``GET <prefix>oauth/frontchannel-logout?iss=...&sid=...`` (register it as
  the ``frontchannel_logout_uri``, with ``frontchannel_logout_session_required``):
  the provider loads it in an iframe.  A cross-site iframe carries no
  ``SameSite=Lax`` cookie, so the sessions are found by ``sid`` through the
  store's index; without ``iss`` and ``sid`` only the session of the cookie the
  request carries (if any) ends, and only when the browser says the request
  loads a frame (``Sec-Fetch-Dest``), never on a top-level navigation from
  another site.  The answer is a tiny page that may be framed.

Both answer ``Cache-Control: no-store`` and emit a span and an audit event;
the token, the ``sid`` and the subject only ever appear as keyed digests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.core.logout_token import MAX_LOGOUT_TOKEN_LENGTH
from dash_oauth_otel.core.logout_token import remember_jti
from dash_oauth_otel.core.logout_token import validate_logout_token
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import LogoutTokenError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.redact import digest

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = ["MAX_LOGOUT_BODY", "backchannel_logout", "frontchannel_logout"]

MAX_LOGOUT_BODY = MAX_LOGOUT_TOKEN_LENGTH * 2
"""Largest back-channel logout request body accepted, in bytes."""
_MAX_SID = 255

_SIGNED_OUT = (
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    '<meta name=referrer content=no-referrer><link rel=icon href="data:,">'
    "<title>Signed out</title></head><body><p id=dash-oauth-signed-out>Signed out.</p>"
    "</body></html>"
)
_REFUSED = (
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    '<meta name=referrer content=no-referrer><link rel=icon href="data:,">'
    "<title>Logout refused</title></head><body><p id=dash-oauth-logout-refused>"
    "This logout request was refused.</p></body></html>"
)


def _attributes(module: DashOAuth, phase: str) -> spans.Attributes:
    return {
        **module.client.telemetry_attributes(),
        attr.OAUTH_PHASE: phase,
        attr.DASH_MODULE_ID: module.module_id,
    }


def _end_all(module: DashOAuth, records: list[SessionRecord], reason: str) -> int:
    return sum(1 for record in records if module.lifecycle.end(record, reason))


# -- back-channel ----------------------------------------------------------------


def _read_logout_token(request: flask.Request) -> str:
    """The one ``logout_token`` of a form-encoded POST (§2.5), within the size cap."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise LogoutTokenError(
            "The logout request must be application/x-www-form-urlencoded.",
            reason="unsupported_media_type",
        )
    length = request.content_length
    body = b"" if length == 0 else request.stream.read(MAX_LOGOUT_BODY + 1)
    if (length is not None and length > MAX_LOGOUT_BODY) or len(body) > MAX_LOGOUT_BODY:
        raise LogoutTokenError("The logout request is too large.", reason="body_too_large")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise LogoutTokenError("The logout request is malformed.", reason="malformed") from None
    tokens = [value for name, value in pairs if name == "logout_token"]
    if len(tokens) != 1 or not tokens[0]:
        raise LogoutTokenError(
            "The logout request must carry exactly one logout_token.", reason="malformed"
        )
    return tokens[0]


def backchannel_logout(module: DashOAuth) -> Response:
    """``POST oauth/backchannel-logout``: validate the logout token, end its sessions."""
    client = module.client
    with spans.span(
        spans.BACKCHANNEL_LOGOUT, _attributes(module, "backchannel_logout"), root=True
    ) as current:
        try:
            claims = validate_logout_token(client, _read_logout_token(flask.request))
            spans.set_attributes(
                current,
                {
                    attr.OAUTH_LOGOUT_SID_DIGEST: digest(claims.sid),
                    attr.OAUTH_LOGOUT_SUB_DIGEST: digest(claims.sub),
                },
            )
            # §2.6 step 8: a token works once, whichever process sees it.
            remember_jti(
                module.sessions.store,
                claims,
                issuer=client.provider.issuer or "",
                client_id=client.client_id,
                now=module.sessions.clock(),
            )
        except DashOAuthError as exc:
            exc.phase = exc.phase or "backchannel_logout"
            spans.record_error(current, exc)
            audit.emit(
                audit.AUDIT_BACKCHANNEL_LOGOUT_REJECTED,
                **client.audit_fields(),
                module_id=module.module_id,
                reason=exc.reason or exc.error,
                error_class=type(exc).__qualname__,
            )
            response = flask.jsonify({"error": "invalid_request", "error_description": exc.message})
            response.status_code = 400  # §2.8, also for an unusable key set
            return no_store(response)
        # §2.7: every session of that provider session (or of that subject).
        records = module.sessions.sessions_of(op_sid=claims.sid, sub=claims.sub)
        ended = _end_all(module, records, "backchannel_logout")
        spans.set_attributes(current, {attr.OAUTH_LOGOUT_SESSIONS_ENDED: ended})
        audit.emit(
            audit.AUDIT_BACKCHANNEL_LOGOUT,
            **client.audit_fields(),
            module_id=module.module_id,
            sessions_ended=ended,
            sid_digest=digest(claims.sid),
            sub_digest=digest(claims.sub),
        )
    return no_store(Response(b"", status=200))


# -- front-channel ---------------------------------------------------------------


def _one(name: str) -> str | None:
    values = flask.request.args.getlist(name)
    if len(values) > 1:
        raise InputError(f"The logout request repeats '{name}'.", reason="param_duplicated")
    return values[0] if values else None


def _frontchannel_sessions(module: DashOAuth) -> tuple[list[SessionRecord], str | None]:
    """The sessions a front-channel logout names, and the ``sid`` it names them by.

    Front-Channel Logout 1.0 §2: ``iss`` and ``sid`` come together or not at all.
    """
    iss, sid = _one("iss"), _one("sid")
    if iss is None and sid is None:
        # Only a frame may end the cookie's session this way: a top-level GET
        # from another site carries the SameSite=Lax cookie too (logout CSRF).
        dest = flask.request.headers.get("Sec-Fetch-Dest")
        if dest is not None and dest not in ("iframe", "frame"):
            raise InputError(
                "A front-channel logout without 'iss' and 'sid' must come from a frame.",
                reason="not_framed",
            )
        record = module.sessions.load(module.cookies.session_id(flask.request))
        return ([record] if record is not None else []), None
    if iss is None or sid is None:
        missing = "iss" if iss is None else "sid"
        raise InputError(
            "A front-channel logout with 'sid' or 'iss' must carry both.",
            reason=f"missing_{missing}",
        )
    if iss != module.client.provider.issuer:
        raise InputError(
            f"The front-channel logout was not sent by {module.client.provider.issuer}.",
            reason="wrong_issuer",
        )
    if not 0 < len(sid) <= _MAX_SID:
        raise InputError("The front-channel logout 'sid' is malformed.", reason="malformed")
    return module.sessions.sessions_of(op_sid=sid), sid


def frontchannel_logout(module: DashOAuth) -> Response:
    """``GET oauth/frontchannel-logout``: end the sessions of ``sid`` (or of the cookie)."""
    client = module.client
    cookie_session = module.cookies.session_id(flask.request)
    with spans.span(
        spans.FRONTCHANNEL_LOGOUT, _attributes(module, "frontchannel_logout"), root=True
    ) as current:
        try:
            records, sid = _frontchannel_sessions(module)
        except InputError as exc:
            exc.phase = "frontchannel_logout"
            spans.record_error(current, exc)
            audit.emit(
                audit.AUDIT_FRONTCHANNEL_LOGOUT_REJECTED,
                **client.audit_fields(),
                module_id=module.module_id,
                reason=exc.reason,
                error_class=type(exc).__qualname__,
            )
            return no_store(flask.Response(_REFUSED, status=400, mimetype="text/html"))
        ended = _end_all(module, records, "frontchannel_logout")
        spans.set_attributes(
            current,
            {attr.OAUTH_LOGOUT_SESSIONS_ENDED: ended, attr.OAUTH_LOGOUT_SID_DIGEST: digest(sid)},
        )
        audit.emit(
            audit.AUDIT_FRONTCHANNEL_LOGOUT,
            **client.audit_fields(),
            module_id=module.module_id,
            sessions_ended=ended,
            sid_digest=digest(sid),
        )
    response = no_store(flask.Response(_SIGNED_OUT, status=200, mimetype="text/html"))
    if cookie_session and any(r.sid == cookie_session for r in records):
        module.cookies.clear_session(response)
    return response
