"""Session lifecycle inside the app: freshness checks, refresh, end and sweep.

Framework-free apart from what the module passes in; every decision about a
session (still valid? refresh now? end and revoke?) is made here so that the
guard, the routes and the sweeper agree.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from dataclasses import replace

from dash_oauth_otel.adapter.options import ModuleOptions
from dash_oauth_otel.adapter.sessions import SessionManager
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.lifecycle import refresh_token
from dash_oauth_otel.core.lifecycle import revoke_token
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import set_context_attributes
from dash_oauth_otel.telemetry.metrics import instruments

__all__ = ["Lifecycle", "Outcome"]

_log = logging.getLogger("dash_oauth_otel")
_MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Outcome:
    """The session to use for a request, or why there is none.

    :param record: The valid (possibly refreshed, possibly stale) session.
    :param error: Why the session ended (``token_expired``, ``reauth_required``,
        ``token_refresh_error``, ``idle_timeout``, ``max_lifetime``), if it did.
    """

    record: SessionRecord | None
    error: str | None = None


@dataclass
class Lifecycle:
    """Session decisions for one module."""

    client: OAuthClient
    sessions: SessionManager
    options: ModuleOptions
    module_id: str

    def __post_init__(self) -> None:
        self._sweeper: threading.Thread | None = None
        self._sweeper_lock = threading.Lock()

    # -- per request ---------------------------------------------------------

    def resolve(self, sid: str | None) -> Outcome:
        """Load the session for ``sid``; end it if over; refresh its token if due."""
        record = self.sessions.load(sid)
        if record is None:
            return Outcome(None)
        set_context_attributes(
            {attr.DASH_MODULE_ID: self.module_id, attr.DASH_SESSION_ID_DIGEST: record.sid_digest}
        )
        reason = self.sessions.expired_reason(record)
        reauth = self.options.reauth_after_seconds
        if reason is None and reauth is not None and time.time() - record.auth_time >= reauth:
            reason = "reauth_required"
        if reason is not None:
            self.end(record, reason)
            return Outcome(None, reason)
        if self._needs_refresh(record.token):
            refreshed = self.refresh(record)
            if refreshed.record is None:
                return refreshed
            record = refreshed.record
        if record.token.is_expired() and not record.stale:
            if self.options.indefinite_session:
                marked = self.sessions.update(
                    record, lambda current: replace(current, stale=True, error="token_expired")
                )
                record = marked if marked is not None else record
            else:
                self.end(record, "token_expired")
                return Outcome(None, "token_expired")
        return Outcome(self.sessions.touch(record))

    def _needs_refresh(self, token: OAuthToken) -> bool:
        # A token shorter-lived than twice the lead would be refreshed on every
        # request: the lead is capped at half the token's lifetime.
        lead = self.options.refresh_lead_seconds
        lifetime = token.lifetime
        if lifetime is not None:
            lead = min(lead, lifetime / 2)
        return token.is_expired(leeway=lead)

    def refresh(self, record: SessionRecord) -> Outcome:
        """Refresh ``record``'s token, single-flight across processes."""
        if time.time() < record.next_refresh_at:
            return Outcome(record)
        if not record.token.refresh_token:
            return Outcome(record)
        name = self.sessions.lock_name(record)
        with self.sessions.store.lock(name, ttl=30.0, wait=10.0) as acquired:
            current = self.sessions.load(record.sid)
            if current is None:
                return Outcome(None, "logged_out")
            if not self._needs_refresh(current.token) or not acquired:
                # Another request (maybe in another process) refreshed it, or holds
                # the lock: use what is stored now.
                return Outcome(current)
            try:
                token = refresh_token(self.client, current.token)
            except DashOAuthError as exc:
                return self._refresh_failed(current, exc)
            updated = replace(
                current,
                token=token,
                epoch=current.epoch + 1,
                stale=False,
                error=None,
                refresh_failures=0,
                next_refresh_at=0.0,
            )
            self.sessions.save(updated)
            return Outcome(updated)

    def _refresh_failed(self, record: SessionRecord, exc: DashOAuthError) -> Outcome:
        failures = record.refresh_failures + 1
        fatal = isinstance(exc, TokenEndpointError) and exc.oauth_error in (
            "invalid_grant",
            "invalid_client",
            "unauthorized_client",
        )
        if self.options.indefinite_session or (not fatal and not record.token.is_expired()):
            delay = min(_MAX_BACKOFF, 2.0 ** (failures - 1)) * (1 + random.random() / 4)  # noqa: S311
            kept = replace(
                record,
                refresh_failures=failures,
                next_refresh_at=time.time() + delay,
                stale=record.stale
                or (self.options.indefinite_session and record.token.is_expired()),
                error="token_refresh_error",
            )
            self.sessions.save(kept)
            if self.options.indefinite_session:
                audit.emit(
                    audit.AUDIT_REFRESH_FAILED_BUT_KEPT_SESSION,
                    **self.client.audit_fields(),
                    reason="refresh_failed",
                    kept_token=True,
                    error_class=type(exc).__qualname__,
                    session_id_digest=record.sid_digest,
                )
            return Outcome(kept)
        self.end(record, "token_refresh_error", error_class=type(exc).__qualname__)
        return Outcome(None, "token_refresh_error")

    # -- ending --------------------------------------------------------------

    def end(
        self,
        record: SessionRecord,
        reason: str,
        *,
        revoke: bool | None = None,
        error_class: str | None = None,
    ) -> bool:
        """End ``record`` once (atomically); revoke its tokens when configured.

        :returns: Whether this call ended it (another process may have first).
        """
        removed = self.sessions.delete(record.sid)
        if removed is None:
            return False
        do_revoke = self.options.revoke_on_session_end if revoke is None else revoke
        audit.emit(
            audit.AUDIT_SESSION_ENDED,
            **self.client.audit_fields(),
            reason=reason,
            was_authenticated=True,
            revoke=do_revoke,
            error_class=error_class,
            session_id_digest=removed.sid_digest,
            module_id=self.module_id,
        )
        found = instruments()
        if found is not None:
            found.active_sessions.add(-1, {attr.OAUTH_PROVIDER_NAME: self.client.provider.name})
        if do_revoke:
            self.revoke(removed.token, reason)
        return True

    def revoke(self, token: OAuthToken, reason: str) -> None:
        """Revoke refresh then access token, best effort, under ``session.end.revoke``."""
        root = reason != "logout"
        with spans.span(
            spans.SESSION_END_REVOKE,
            {
                **self.client.telemetry_attributes(),
                attr.OAUTH_PHASE: "session.end.revoke",
                attr.DASH_MODULE_ID: self.module_id,
            },
            root=root,
        ):
            if token.refresh_token:
                revoke_token(self.client, token, "refresh")
            revoke_token(self.client, token, "access")

    # -- sweeping ------------------------------------------------------------

    def sweep(self) -> int:
        """End every session over its idle timeout or lifetime; return how many."""
        ended = 0
        interval = self.options.sweep_interval_seconds
        with self.sessions.store.lock("sweeper", ttl=interval, wait=0.0) as acquired:
            if not acquired:
                return 0
            for record in list(self.sessions.scan()):
                reason = self.sessions.expired_reason(record)
                if reason is not None and self.end(record, reason):
                    ended += 1
        return ended

    def start_sweeper(self) -> None:
        """Start this process's sweeper thread (once)."""
        with self._sweeper_lock:
            if self._sweeper is not None and self._sweeper.is_alive():
                return
            thread = threading.Thread(
                target=self._sweep_forever, name="dash-oauth-otel-sweeper", daemon=True
            )
            self._sweeper = thread
            thread.start()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(self.options.sweep_interval_seconds)
            try:
                self.sweep()
            except Exception:
                _log.warning("session sweep failed", exc_info=True)
