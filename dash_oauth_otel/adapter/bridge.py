"""The callback bridge: a provider response kept briefly under a one-time handle.

Two steps of the callback cannot finish the login in the request that
carries the provider's response, because the browser-binding cookie is not
sent with it: the ``form_post`` POST (a cross-site POST) and, under
``SameSite=Strict``, the provider's redirect.  The response is then kept in
the store under a handle and the browser is sent, same-origin, to
``oauth/callback?fp=<handle>``, where the login finishes with its cookie.

What an anonymous request can make this bridge store is bounded:

* nothing is kept before the state opens with this client's key, names this
  client, is still pending in the store and, when the binding cookie came
  along, belongs to this browser;
* only the response parameters the specifications define are kept (RFC 6749
  §4.1.2 and §4.1.2.1, RFC 9207), each within the callback's size limits;
* a state has one handle (a keyed digest of the state): a second response for
  the same state is not stored again, so a pending login costs at most one
  record here, for at most two minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import flask

from dash_oauth_otel.core.callback import check_callback_issuer
from dash_oauth_otel.core.callback import parse_callback_params
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.state import StatePayload
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.state import peek_one_time
from dash_oauth_otel.core.state import same_browser
from dash_oauth_otel.core.state import verify_binding
from dash_oauth_otel.errors import CallbackQueryError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.redact import digest

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = [
    "FORM_POST_MAX_BYTES",
    "HANDLE_PREFIX",
    "RESPONSE_PARAMETERS",
    "read_form",
    "stash",
    "take",
]

FORM_POST_MAX_BYTES = 65536
"""Largest ``form_post`` body accepted."""
RESPONSE_PARAMETERS = ("code", "state", "iss", "error", "error_description", "error_uri")
"""The authorization response parameters kept (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207)."""
HANDLE_PREFIX = "formpost:"
"""Store prefix of the bridge's records."""
_HANDLE_TTL = 120.0


def _handles(module: DashOAuth) -> Sealer:
    return Sealer(module._secret, "form_post", context=module.client.record_context)


def _handle_key(handle: str) -> str:
    return HANDLE_PREFIX + hashlib.sha256(handle.encode()).hexdigest()


def _handle_of(module: DashOAuth, payload: StatePayload) -> str:
    """The one handle of a state: unguessable without the state and the module's key."""
    mac = hmac.new(module._secret, b"form_post\0" + payload.state.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def _check_pending(
    module: DashOAuth, params: Mapping[str, str], binding: str | None
) -> StatePayload:
    """The checks a response passes before anything of it is stored.

    :raises DashOAuthError: ``CallbackIssuerError``, or ``StateError`` when the
        state does not open, names another client, is no longer pending, or
        belongs to another browser.
    """
    check_callback_issuer(module.client, params)
    payload = open_state(module.client, params["state"])
    verify_binding(module.client, payload)
    values = peek_one_time(module.client, payload)
    if values is None:
        raise StateError(
            "This sign-in was already used or has expired; please sign in again.",
            phase="callback.state_store_lookup",
            reason="state_not_pending",
        )
    if binding is not None and not same_browser(values.browser_digest, binding):
        raise StateError(
            "This sign-in was started in another browser.",
            phase="callback.browser_token_validation",
            reason="browser_mismatch",
        )
    return payload


def stash(module: DashOAuth, params: Mapping[str, str], binding: str | None) -> tuple[str, str]:
    """Check a provider response and keep its parameters under the state's handle.

    :param params: The parsed response (see
        :func:`~dash_oauth_otel.core.callback.parse_callback_params`).
    :param binding: The browser-binding cookie, when the request carried it.
    :returns: The handle and the login's correlation id; a second response
        for the same state gets the same handle and is not stored.
    :raises DashOAuthError: See :func:`_check_pending`.
    """
    payload = _check_pending(module, params, binding)
    handle = _handle_of(module, payload)
    kept = {name: params[name] for name in RESPONSE_PARAMETERS if name in params}
    sealed = _handles(module).seal({"p": kept})
    ttl = min(_HANDLE_TTL, module.client.state_ttl)
    module.client.state_store.add(_handle_key(handle), sealed.encode(), ttl)  # type: ignore[union-attr]
    return handle, payload.trace_id


def take(module: DashOAuth, handle: str) -> dict[str, str] | None:
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
        return {str(k): str(v) for k, v in params.items() if k in RESPONSE_PARAMETERS}


def read_form(request: flask.Request) -> dict[str, str]:
    """Parse a ``form_post`` body within its limits.

    :raises CallbackQueryError: ``unsupported_media_type``, ``body_too_large``,
        ``param_type`` or one of :func:`parse_callback_params`'s reasons.
    """
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
