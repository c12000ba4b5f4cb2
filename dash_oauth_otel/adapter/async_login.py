"""Logins whose code exchange runs in a worker.

The main process does everything that must happen once and here: it unseals
and checks the state, checks the browser binding and consumes the one-time
values (:func:`~dash_oauth_otel.core.callback.run_callback`).  Only then is the
exchange sent to a worker, and the browser gets a small "signing you in" page
that polls ``oauth/status?login=<handle>``.  A waiter thread records the
worker's outcome in the store under the handle; the page then opens
``oauth/callback?complete=<handle>``, which creates the session in the
browser's own request.

A login cancelled meanwhile (logout in the same browser) never lands: its
tokens are revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING
from typing import Any

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.pages import waiting_page
from dash_oauth_otel.core.callback import ValidatedCallback
from dash_oauth_otel.core.callback import run_callback
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.state import browser_digest
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.workers.backends import PendingTask
from dash_oauth_otel.workers.context import start_in_context
from dash_oauth_otel.workers.dispatch import rebuild_error
from dash_oauth_otel.workers.tasks import error_json

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = ["cancel", "complete", "progress", "start"]

_log = logging.getLogger("dash_oauth_otel")


def _key(handle: str) -> str:
    return "login:" + hashlib.sha256(handle.encode()).hexdigest()


def _cancel_key(binding_digest: str) -> str:
    return "login-cancel:" + binding_digest


def _active_key(binding_digest: str) -> str:
    return "login-active:" + binding_digest


def _sealer(module: DashOAuth) -> Sealer:
    return Sealer(module._secret, "async-login", context=module.client.record_context)


def _ttl(module: DashOAuth) -> float:
    timeout = module.dispatcher.timeout if module.dispatcher else 30.0
    return module.client.state_ttl + timeout


def _write(module: DashOAuth, handle: str, record: dict[str, Any]) -> None:
    sealed = _sealer(module).seal(record).encode()
    module.client.state_store.set(_key(handle), sealed, _ttl(module))  # type: ignore[union-attr]


def _read(module: DashOAuth, handle: str, *, take: bool) -> dict[str, Any] | None:
    if not handle or len(handle) > 128:
        return None
    store = module.client.state_store
    assert store is not None  # noqa: S101 - the module always sets one
    raw = store.take(_key(handle)) if take else store.get(_key(handle))
    if raw is None:
        return None
    try:
        return _sealer(module).unseal(raw.decode("ascii", "replace"), max_chars=1 << 20)
    except StateError:
        return None


def start(module: DashOAuth, params: Any, binding: str | None) -> Response:
    """Validate the callback here, send the exchange to a worker, answer with the waiting page."""
    from dash_oauth_otel.adapter.routes import login_failed
    from dash_oauth_otel.adapter.routes import page_of_state

    dispatcher = module.dispatcher
    assert dispatcher is not None  # noqa: S101 - only called with workers

    def dispatch(client: OAuthClient, validated: ValidatedCallback) -> str:
        payload = validated.payload
        pending = dispatcher.submit(
            client,
            "exchange",
            {
                "code": validated.code,
                "verifier": validated.values.code_verifier,
                "nonce": validated.values.nonce,
                "binding": validated.values.browser_digest,
                "max_age": payload.max_age,
                "issued_at": payload.issued_at,
            },
        )
        handle = secrets.token_urlsafe(32)
        record = {
            "status": "pending",
            "next": dict(payload.app or {}).get("next"),
            "binding": validated.values.browser_digest,
            "trace_id": payload.trace_id,
            "started": time.time(),
        }
        _write(module, handle, record)
        store = module.client.state_store
        assert store is not None  # noqa: S101 - the module always sets one
        # Marks the browser as having a login in a worker, which a logout cancels.
        store.set(_active_key(validated.values.browser_digest), b"1", _ttl(module))
        start_in_context(_wait, module, handle, record, pending, name="login")
        return handle

    try:
        handle = run_callback(module.client, params, binding or "", dispatch, is_async=True)
    except DashOAuthError as exc:
        return login_failed(module, exc, next_path=page_of_state(module, params))
    return waiting_page(
        status_url=f"{module.url('status')}?login={handle}",
        complete_url=f"{module.url('callback')}?complete={handle}",
        clean_path=module.url("callback"),
    )


def _wait(module: DashOAuth, handle: str, record: dict[str, Any], pending: PendingTask) -> None:
    dispatcher = module.dispatcher
    assert dispatcher is not None  # noqa: S101
    try:
        result = dispatcher.outcome(
            module.client,
            "exchange",
            pending,
            on_late=lambda late: _discard(
                module, OAuthToken.from_dict(late["token"]), "worker_timeout"
            ),
        )
        token = OAuthToken.from_dict(result["token"])
    except DashOAuthError as exc:
        exc.trace_id = exc.trace_id or record.get("trace_id")
        _write(module, handle, {**record, "status": "error", "error": error_json(exc)})
        return
    except Exception:
        _log.warning("an async login failed unexpectedly", exc_info=True)
        _write(module, handle, {**record, "status": "error", "error": None})
        return
    if _cancelled(module, record["binding"]):
        _discard(module, token, "logged_out")
        _write(module, handle, {**record, "status": "error", "error": _logged_out()})
        return
    _write(module, handle, {**record, "status": "done", "token": token.to_dict()})


def _logged_out() -> dict[str, Any]:
    return {
        "type": "StateError",
        "message": "You signed out while the sign-in was finishing.",
        "error": "logged_out",
        "phase": "callback.worker",
        "reason": "logged_out",
        "trace_id": None,
    }


def _cancelled(module: DashOAuth, binding_digest: str) -> bool:
    store = module.client.state_store
    assert store is not None  # noqa: S101
    return store.get(_cancel_key(binding_digest)) is not None


def _discard(module: DashOAuth, token: OAuthToken, reason: str) -> None:
    """A login result that must not land: revoke its tokens."""
    audit.emit(
        audit.AUDIT_STALE_RESULT_REVOKED,
        **module.client.audit_fields(),
        operation="login",
        reason=reason,
    )
    module.lifecycle.revoke(token, "stale_result")


def progress(module: DashOAuth, handle: str) -> str:
    """``pending``, ``done``, ``error`` or ``unknown`` for the waiting page."""
    record = _read(module, handle, take=False)
    return str(record["status"]) if record else "unknown"


def complete(module: DashOAuth, handle: str, binding: str | None) -> Response:
    """Finish an async login in the browser's own request: session, cookie, redirect."""
    from dash_oauth_otel.adapter.routes import establish_session
    from dash_oauth_otel.adapter.routes import login_failed

    # Look first, take only a finished login: taking a pending record and
    # writing it back would overwrite the worker's answer landing in between.
    peeked = _read(module, handle, take=False)
    if peeked is not None and peeked["status"] == "pending":
        return waiting_page(
            status_url=f"{module.url('status')}?login={handle}",
            complete_url=f"{module.url('callback')}?complete={handle}",
            clean_path=module.url("callback"),
        )
    record = _read(module, handle, take=True) if peeked is not None else None
    if record is None:
        return login_failed(
            module,
            StateError(
                "This sign-in was already completed or has expired; please sign in again.",
                phase="callback.worker",
                reason="unknown_login_handle",
            ),
        )
    if record["status"] == "error":
        error = record.get("error") or {"message": "The sign-in failed in a worker."}
        next_path = record.get("next")
        return login_failed(
            module,
            rebuild_error(error),
            next_path=next_path if isinstance(next_path, str) else None,
        )
    token = OAuthToken.from_dict(record["token"])
    presented = browser_digest(binding) if binding else ""
    if not hmac.compare_digest(presented.encode(), str(record["binding"]).encode()) or _cancelled(
        module, record["binding"]
    ):
        _discard(module, token, "browser_binding_mismatch")
        return login_failed(
            module,
            StateError(
                "This sign-in was finished by another browser, or cancelled.",
                phase="callback.worker",
                reason="browser_binding_mismatch",
            ),
        )
    trace_id = record.get("trace_id")
    return establish_session(
        module,
        token,
        {"next": record.get("next") or module.home},
        trace_id if isinstance(trace_id, str) else None,
    )


def cancel(module: DashOAuth, binding: str) -> None:
    """Cancel the async login of the browser holding ``binding`` (at logout).

    Writes nothing unless that browser has a login in a worker: a logout
    cancelling nothing costs no record.
    """
    if module.dispatcher is None:
        return
    store = module.client.state_store
    assert store is not None  # noqa: S101
    bdigest = browser_digest(binding)
    if store.get(_active_key(bdigest)) is None:
        return
    store.set(_cancel_key(bdigest), b"1", _ttl(module))
    flask.g.dash_oauth_login_cancelled = True
