"""Session lifecycle inside the app: freshness checks, refresh, end and sweep.

Framework-free apart from what the module passes in; every decision about a
session (still valid? refresh now? end and revoke?) is made here so that the
guard, the routes and the sweeper agree.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from dash_oauth_otel._process import current_pid
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
from dash_oauth_otel.telemetry.correlation import set_trace_id
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.metrics import instruments
from dash_oauth_otel.telemetry.redact import digest
from dash_oauth_otel.telemetry.settings import TelemetrySettings
from dash_oauth_otel.telemetry.settings import use_settings
from dash_oauth_otel.workers.context import start_in_context
from dash_oauth_otel.workers.dispatch import Dispatcher

__all__ = ["Lifecycle", "Outcome"]

_log = logging.getLogger("dash_oauth_otel")
_MAX_BACKOFF = 300.0
_QUIET_RECORDS = 1024  # sessions whose quiet window is remembered per process


@dataclass(frozen=True)
class Outcome:
    """The session to use for a request, or why there is none.

    :param record: The valid (possibly refreshed, possibly stale) session.
    :param error: Why the session ended (``token_expired``, ``reauth_required``,
        ``token_refresh_error``, ``idle_timeout``, ``max_lifetime``), if it did.
    """

    record: SessionRecord | None
    error: str | None = None


_NO_SESSION = Outcome(None)


@dataclass
class Lifecycle:
    """Session decisions for one module."""

    client: OAuthClient
    sessions: SessionManager
    options: ModuleOptions
    module_id: str
    dispatcher: Dispatcher | None = None
    telemetry: TelemetrySettings | None = None

    def __post_init__(self) -> None:
        self._sweeper: threading.Thread | None = None
        self._sweeper_pid: int | None = None
        self._sweeper_lock = threading.Lock()
        # id(record) -> (record, session-clock bound, wall-clock bound, outcome):
        # before both bounds, resolving the same record decides nothing new.
        self._quiet: dict[int, tuple[SessionRecord, float, float, Outcome]] = {}

    # -- per request ---------------------------------------------------------

    def resolve(self, sid: str | None) -> Outcome:
        """Load the session for ``sid``; end it if over; refresh its token if due."""
        record = self.sessions.load(sid)
        if record is None:
            return _NO_SESSION
        set_context_attributes(
            {
                attr.DASH_MODULE_ID: self.module_id,
                attr.DASH_SESSION_IS_ASYNC: self.dispatcher is not None,
                attr.DASH_SESSION_ID_DIGEST: record.sid_digest,
            }
        )
        # The rest of the request (refresh, session end, the app's own calls)
        # carries the correlation id of the session's login.
        set_trace_id(record.trace_id)
        quiet = self._quiet.get(id(record))
        if (
            quiet is not None
            and quiet[0] is record
            and self.sessions.clock() < quiet[1]
            and time.time() < quiet[2]
        ):
            return quiet[3]
        now = time.time()
        reason = self.sessions.expired_reason(record)
        reauth = self.options.reauth_after_seconds
        if reason is None and reauth is not None and now - record.auth_time >= reauth:
            reason = "reauth_required"
        if reason is not None:
            self.end(record, reason)
            return Outcome(None, reason)
        if self._needs_refresh(record.token, now=now):
            refreshed = self.refresh(record)
            if refreshed.record is None:
                return refreshed
            record = refreshed.record
            now = time.time()
        if record.token.is_expired(now=now) and not record.stale:
            if self.options.indefinite_session:
                marked = self.sessions.update(
                    record, lambda current: replace(current, stale=True, error="token_expired")
                )
                record = marked if marked is not None else record
            else:
                self.end(record, "token_expired")
                return Outcome(None, "token_expired")
        touched = self.sessions.touch(record)
        outcome = Outcome(touched)
        if touched is record:
            self._remember_quiet(record, outcome)
        return outcome

    def _remember_quiet(self, record: SessionRecord, outcome: Outcome) -> None:
        """Note until when :meth:`resolve` would return ``outcome`` for ``record`` again.

        That holds while the session is within its idle timeout, lifetime and
        re-authentication age, its last activity needs no write, and its token
        is not yet due for refresh (the refresh lead comes before expiry).
        """
        sessions = self.sessions
        session_bound = min(
            record.created_at + sessions.max_lifetime,
            record.last_seen + sessions.idle_timeout,
            record.last_seen + sessions.touch_interval,
        )
        token = record.token
        wall_bound = math.inf
        if token.expires_at is not None:
            wall_bound = token.expires_at - self._refresh_lead(token)
        reauth = self.options.reauth_after_seconds
        if reauth is not None:
            wall_bound = min(wall_bound, record.auth_time + reauth)
        if len(self._quiet) >= _QUIET_RECORDS:
            self._quiet.clear()
        self._quiet[id(record)] = (record, session_bound, wall_bound, outcome)

    def _refresh_lead(self, token: OAuthToken) -> float:
        # A token shorter-lived than twice the lead would be refreshed on every
        # request: the lead is capped at half the token's lifetime.
        lead = self.options.refresh_lead_seconds
        lifetime = token.lifetime
        if lifetime is not None:
            lead = min(lead, lifetime / 2)
        return lead

    def _needs_refresh(self, token: OAuthToken, *, now: float | None = None) -> bool:
        return token.is_expired(leeway=self._refresh_lead(token), now=now)

    def refresh(self, record: SessionRecord, *, wait: bool = True) -> Outcome:
        """Refresh ``record``'s token, single-flight across processes.

        With workers and a token still valid, the refresh runs in the background
        and the current record is returned at once (the request never waits on
        the provider); otherwise the caller waits for the new token.
        """
        if time.time() < record.next_refresh_at or not record.token.refresh_token:
            return Outcome(record)
        if self.dispatcher is not None and wait and not record.token.is_expired():
            start_in_context(self._refresh_quietly, record, name="refresh")
            return Outcome(record)
        flight = f"refresh-flight:{record.sid_digest}"
        hold = (self.dispatcher.timeout if self.dispatcher else 10.0) + 30.0
        with self.sessions.store.lock(flight, ttl=hold, wait=10.0 if wait else 0.0) as acquired:
            current = self.sessions.load(record.sid)
            if current is None:
                return Outcome(None, "logged_out")
            if not acquired or not self._needs_refresh(current.token):
                # Another request (maybe in another process) refreshed it, or is
                # refreshing it now: use what is stored.
                return Outcome(current)
            try:
                token = self._refresh_token(current.token)
            except DashOAuthError as exc:
                return self._refresh_failed(current, exc)
            return self._apply_refresh(current, token)

    def _refresh_quietly(self, record: SessionRecord) -> None:
        try:
            self.refresh(record, wait=False)
        except Exception:
            _log.warning("background refresh failed", exc_info=True)

    def _refresh_token(self, token: OAuthToken) -> OAuthToken:
        if self.dispatcher is None:
            return refresh_token(self.client, token)
        result = self.dispatcher.run(
            self.client, "refresh", {"token": token.to_dict()}, on_late=self._discard_late_refresh
        )
        return OAuthToken.from_dict(result["token"])

    def _discard_late_refresh(self, result: dict[str, Any]) -> None:
        """A refresh that finished after its timeout: nobody will use these tokens."""
        audit.emit(
            audit.AUDIT_STALE_RESULT_REVOKED,
            **self.client.audit_fields(),
            operation="refresh",
            reason="worker_timeout",
        )
        self.revoke(OAuthToken.from_dict(result["token"]), "stale_result")

    def _apply_refresh(self, source: SessionRecord, token: OAuthToken) -> Outcome:
        """Install ``token`` unless the session moved on; a late result is revoked."""
        applied: list[SessionRecord] = []

        def change(current: SessionRecord) -> SessionRecord:
            if current.epoch != source.epoch:
                return current  # a newer refresh won: keep it
            updated = replace(
                current,
                token=token,
                epoch=current.epoch + 1,
                stale=False,
                error=None,
                refresh_failures=0,
                next_refresh_at=0.0,
            )
            applied.append(updated)
            return updated

        current = self.sessions.update(source, change, wait=30.0)
        if applied:
            return Outcome(applied[0])
        # Logged out, replaced by a new login, or refreshed by someone else
        # meanwhile: the new tokens must not outlive this result.
        audit.emit(
            audit.AUDIT_STALE_RESULT_REVOKED,
            **self.client.audit_fields(),
            operation="refresh",
            session_id_digest=source.sid_digest,
            reason="session_ended" if current is None else "newer_state",
        )
        self._revoke_async(token, "stale_result", source.sid_digest)
        return Outcome(current, None if current is not None else "logged_out")

    def _refresh_failed(self, record: SessionRecord, exc: DashOAuthError) -> Outcome:
        failures = record.refresh_failures + 1
        fatal = isinstance(exc, TokenEndpointError) and exc.oauth_error in (
            "invalid_grant",
            "invalid_client",
            "unauthorized_client",
        )
        if self.options.indefinite_session or (not fatal and not record.token.is_expired()):
            delay = min(_MAX_BACKOFF, 2.0 ** (failures - 1)) * (1 + random.random() / 4)  # noqa: S311
            stale = self.options.indefinite_session and record.token.is_expired()
            kept = self.sessions.update(
                record,
                lambda current: replace(
                    current,
                    refresh_failures=failures,
                    next_refresh_at=time.time() + delay,
                    stale=current.stale or stale,
                    error="token_refresh_error",
                ),
            )
            if kept is None:
                return Outcome(None, "logged_out")
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

    # -- starting and ending ---------------------------------------------------

    def start(
        self, token: OAuthToken, *, auth_time: float | None, trace_id: str | None
    ) -> SessionRecord:
        """Create the session of a completed login, with its audit events and count."""
        record = self.sessions.create(token, auth_time=auth_time, trace_id=trace_id)
        audit.emit(
            audit.AUDIT_SESSION_STARTED,
            **self.client.audit_fields(),
            module_id=self.module_id,
            session_id_digest=record.sid_digest,
            sub_digest=digest(token.subject),
        )
        self._authenticated_changed(record, authenticated=True, reason="login")
        return record

    def _authenticated_changed(
        self, record: SessionRecord, *, authenticated: bool, reason: str
    ) -> None:
        """Audit a session starting or ending, and count it in the active sessions."""
        audit.emit(
            audit.AUDIT_AUTHENTICATED_CHANGED,
            **self.client.audit_fields(),
            module_id=self.module_id,
            session_id_digest=record.sid_digest,
            authenticated=authenticated,
            previous_authenticated=not authenticated,
            reason=reason,
        )
        found = instruments()
        if found is not None:
            change = 1 if authenticated else -1
            found.active_sessions.add(change, {attr.OAUTH_PROVIDER_NAME: self.client.provider.name})

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
        with trace_id_scope(record.trace_id):
            return self._end(record, reason, revoke=revoke, error_class=error_class)

    def _end(
        self, record: SessionRecord, reason: str, *, revoke: bool | None, error_class: str | None
    ) -> bool:
        with self.sessions.store.lock(self.sessions.lock_name(record), ttl=30.0, wait=10.0):
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
        self._authenticated_changed(removed, authenticated=False, reason=reason)
        if do_revoke:
            if self.dispatcher is not None:
                self._revoke_async(removed.token, reason, removed.sid_digest)
            else:
                self.revoke(removed.token, reason, sid_digest=removed.sid_digest)
        return True

    def _revoke_async(self, token: OAuthToken, reason: str, sid_digest: str | None = None) -> None:
        start_in_context(self._revoke_quietly, token, reason, sid_digest, name="revoke")

    def _revoke_quietly(self, token: OAuthToken, reason: str, sid_digest: str | None) -> None:
        try:
            self.revoke(token, reason, sid_digest=sid_digest)
        except Exception:
            _log.warning("revocation failed", exc_info=True)

    def revoke(self, token: OAuthToken, reason: str, *, sid_digest: str | None = None) -> None:
        """Revoke refresh then access token, best effort.

        A logout's revocations are ``token.revoke`` spans under its ``logout``
        span; any other end of a session, and a late token set, revoke under a
        ``session.end.revoke`` root.
        """
        if reason == "logout":
            self._revoke_pair(token)
            return
        with spans.span(
            spans.SESSION_END_REVOKE,
            {
                **self.client.telemetry_attributes(),
                attr.OAUTH_PHASE: "session.end.revoke",
                attr.DASH_MODULE_ID: self.module_id,
                attr.DASH_SESSION_ID_DIGEST: sid_digest,
            },
            root=True,
        ):
            self._revoke_pair(token)

    def _revoke_pair(self, token: OAuthToken) -> None:
        for which in ("refresh", "access"):
            if which == "refresh" and not token.refresh_token:
                continue
            if self.dispatcher is not None:
                self.dispatcher.run(
                    self.client, "revoke", {"token": token.to_dict(), "which": which}
                )
            else:
                revoke_token(self.client, token, which)

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
        """Start the sweeper thread of this process (a forked worker starts its own)."""
        pid = current_pid()
        if self._sweeper_pid == pid:
            return  # every request after the first
        with self._sweeper_lock:
            if self._sweeper_pid == pid:
                return
            thread = threading.Thread(
                target=self._sweep_forever, name="dash-oauth-otel-sweeper", daemon=True
            )
            self._sweeper = thread
            thread.start()
            self._sweeper_pid = pid

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(self.options.sweep_interval_seconds)
            try:
                with use_settings(self.telemetry):
                    self.sweep()
            except Exception:
                _log.warning("session sweep failed", exc_info=True)
