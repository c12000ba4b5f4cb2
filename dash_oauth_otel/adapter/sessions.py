"""Server-side login sessions.

A browser holds only an opaque random session id (HttpOnly cookie).  The record
it names lives in the store under a hash of the id, sealed with AES-256-GCM
(tokens encrypted at rest), and carries the token set, the user's claims and
the lifecycle times.  A session ends on logout, idle timeout, absolute lifetime
or a failed refresh; :meth:`SessionManager.end` then optionally revokes its
tokens.

For OpenID Connect back- and front-channel logout the store also keeps an
index from the provider's session id (``sid`` of the ID token), and from the
subject, to the sessions of this app that it names, so that any process can
find and end them when the provider says that session is over.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from functools import cached_property
from typing import Any

from dash_oauth_otel._types import Store
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import audit

__all__ = [
    "INDEX_PREFIXES",
    "SESSION_PREFIX",
    "TOUCH_INTERVAL",
    "SessionManager",
    "SessionRecord",
]

SESSION_PREFIX = "session:"
INDEX_PREFIXES = {"sid": "session-sid:", "sub": "session-sub:"}
"""Store keys of the index from a provider ``sid`` / a subject to session keys."""
_INDEX_MAX = 64  # sessions kept per sid or subject (the oldest are dropped)
_GRACE = 3600.0  # records outlive their logical end so the sweeper can still revoke
TOUCH_INTERVAL = 15.0  # most seconds between two writes of a session's last activity
_DECODED_CACHE_SIZE = 256  # records kept decoded per process, keyed by their sealed bytes


@dataclass(frozen=True)
class SessionRecord:
    """One browser's login session (held server-side only)."""

    sid: str = field(repr=False)
    token: OAuthToken
    created_at: float
    last_seen: float
    auth_time: float
    epoch: int = 0
    stale: bool = False
    refresh_failures: int = 0
    next_refresh_at: float = 0.0
    error: str | None = None
    op_sid: str | None = field(default=None, repr=False)
    """The provider's session id (the ID token's ``sid``), if it sent one."""
    trace_id: str | None = None
    """The correlation id of the login that started the session (``None`` for
    records written before it was kept): the session's later spans and events
    carry it."""

    @cached_property
    def sid_digest(self) -> str:
        """A digest of the session id (safe for logs and spans)."""
        return _sid_digest(self.sid)

    def to_json(self) -> dict[str, Any]:
        """The JSON form sealed into the store (contains the tokens)."""
        return {
            "sid": self.sid,
            "token": self.token.to_dict(),
            "created_at": self.created_at,
            "last_seen": self.last_seen,
            "auth_time": self.auth_time,
            "epoch": self.epoch,
            "stale": self.stale,
            "refresh_failures": self.refresh_failures,
            "next_refresh_at": self.next_refresh_at,
            "error": self.error,
            "op_sid": self.op_sid,
            "trace_id": self.trace_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        """Rebuild a record from :meth:`to_json` output."""
        return cls(
            sid=str(data["sid"]),
            token=OAuthToken.from_dict(data["token"]),
            created_at=float(data["created_at"]),
            last_seen=float(data["last_seen"]),
            auth_time=float(data["auth_time"]),
            epoch=int(data.get("epoch", 0)),
            stale=bool(data.get("stale", False)),
            refresh_failures=int(data.get("refresh_failures", 0)),
            next_refresh_at=float(data.get("next_refresh_at", 0.0)),
            error=data.get("error"),
            op_sid=_optional_str(data.get("op_sid")),
            trace_id=_optional_str(data.get("trace_id")),
        )


def _sid_digest(sid: str) -> str:
    return hashlib.sha256(b"dash_oauth_otel/sid\0" + sid.encode()).hexdigest()[:32]


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _key(sid: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(sid.encode()).hexdigest()


def new_session_id() -> str:
    """A fresh, unguessable session id (256 bits)."""
    return secrets.token_urlsafe(32)


@dataclass
class SessionManager:
    """Load, save and end sessions in a store.

    :param store: Where records live (shared by every process of the app).
    :param secret: The secret sealing the records (at least 32 bytes).
    :param idle_timeout: Seconds without activity before a session ends.
    :param max_lifetime: Seconds after creation before a session ends.
    :param context: What the records are bound to (the client's
        :attr:`~dash_oauth_otel.OAuthClient.record_context`): a record sealed for
        another client or issuer does not open, even under the same secret.
    :param audit_fields: The client fields of the audit event emitted when a
        stored record does not open.
    :param issuer: The provider's issuer, scoping the ``sid``/``sub`` index.
    """

    store: Store
    secret: str | bytes = field(repr=False)
    idle_timeout: float
    max_lifetime: float
    clock: Callable[[], float] = time.time
    context: str = ""
    audit_fields: Mapping[str, str | None] = field(default_factory=dict)
    issuer: str = ""

    def __post_init__(self) -> None:
        self.touch_interval = min(TOUCH_INTERVAL, self.idle_timeout / 4)
        self._sealer = Sealer(self.secret, "session", context=self.context)
        # Sealed bytes -> decoded record.  A value is sealed once under a fresh
        # nonce and authenticated when first decoded, so the same bytes always
        # decode to the same record: the requests between two writes of a
        # session (a touch, a refresh) skip AES-GCM, JSON parsing and rebuilding.
        # The store is still asked on every request (``DiskcacheStore`` answers
        # from memory while no process has written), so an ended session is
        # seen at once by every process.
        self._decoded: OrderedDict[bytes, SessionRecord] = OrderedDict()
        self._decoded_lock = threading.Lock()

    def _ttl(self, record: SessionRecord) -> float:
        remaining = record.created_at + self.max_lifetime - self.clock()
        return max(1.0, min(remaining, self.idle_timeout) + _GRACE)

    def create(
        self, token: OAuthToken, *, auth_time: float | None = None, trace_id: str | None = None
    ) -> SessionRecord:
        """Create and save a new session for ``token`` (always a new id).

        :param trace_id: The correlation id of the login, kept with the session.
        """
        now = self.clock()
        record = SessionRecord(
            sid=new_session_id(),
            token=token,
            created_at=now,
            last_seen=now,
            auth_time=auth_time if auth_time is not None else now,
            op_sid=_optional_str((token.id_token_claims or {}).get("sid")),
            trace_id=trace_id,
        )
        self.save(record)
        self._index(record)
        return record

    def save(self, record: SessionRecord) -> None:
        """Write ``record`` (sealed) with a TTL covering its remaining life."""
        sealed = self._sealer.seal(record.to_json())
        self.store.set(_key(record.sid), sealed.encode("ascii"), self._ttl(record))

    def load(self, sid: str | None) -> SessionRecord | None:
        """Return the record for ``sid``, or ``None`` if absent or unreadable."""
        if not sid or len(sid) > 128:
            return None
        raw = self.store.get(_key(sid))
        if raw is None:
            return None
        with self._decoded_lock:
            record = self._decoded.get(raw)
            if record is not None:
                self._decoded.move_to_end(raw)
        if record is None:
            record = self._decode(raw, None)
            if record is None:
                # Present but unopenable: sealed for another client or issuer
                # (a record copied between apps, a cookie sent to another app
                # sharing the store) or altered.  Refused, never used.
                audit.emit(
                    audit.AUDIT_SESSION_REJECTED,
                    **self.audit_fields,
                    reason="foreign_or_tampered",
                    session_id_digest=_sid_digest(sid),
                )
                return None
            with self._decoded_lock:
                self._decoded[raw] = record
                if len(self._decoded) > _DECODED_CACHE_SIZE:
                    self._decoded.popitem(last=False)
        if not secrets.compare_digest(record.sid, sid):
            return None
        return record

    def _decode(self, raw: bytes | None, sid: str | None) -> SessionRecord | None:
        if raw is None:
            return None
        try:
            record = SessionRecord.from_json(self._sealer.unseal(raw.decode("ascii", "replace")))
        except (StateError, KeyError, TypeError, ValueError, OverflowError):
            return None
        if sid is not None and not secrets.compare_digest(record.sid, sid):
            return None
        return record

    def delete(self, sid: str) -> SessionRecord | None:
        """Remove a session atomically; return it if this caller removed it."""
        return self._decode(self.store.take(_key(sid)), sid)

    def expired_reason(self, record: SessionRecord, *, now: float | None = None) -> str | None:
        """Why ``record`` has ended (``idle_timeout`` or ``max_lifetime``), or ``None``."""
        now = self.clock() if now is None else now
        if now - record.created_at >= self.max_lifetime:
            return "max_lifetime"
        if now - record.last_seen >= self.idle_timeout:
            return "idle_timeout"
        return None

    def lock_name(self, record: SessionRecord) -> str:
        """The store lock serialising every write of ``record``."""
        return f"session-write:{record.sid_digest}"

    def update(
        self,
        record: SessionRecord,
        change: Callable[[SessionRecord], SessionRecord],
        *,
        wait: float = 5.0,
    ) -> SessionRecord | None:
        """Apply ``change`` to the stored record under the session's write lock.

        The record is re-read under the lock, so a write never puts back tokens
        that a concurrent refresh (in any process) has just replaced.  Returns
        the saved record, ``None`` if the session is gone, or the stored record
        unchanged if the lock is busy.
        """
        with self.store.lock(self.lock_name(record), ttl=30.0, wait=wait) as acquired:
            current = self.load(record.sid)
            if current is None or not acquired:
                return current
            updated = change(current)
            self.save(updated)
            return updated

    def touch(self, record: SessionRecord) -> SessionRecord:
        """Record activity; writes at most every :attr:`touch_interval` seconds.

        The interval is a quarter of the idle timeout, at most
        :data:`TOUCH_INTERVAL`: a session in use never reaches its timeout
        between two writes.
        """
        now = self.clock()
        if now - record.last_seen < self.touch_interval:
            return record
        updated = self.update(record, lambda current: replace(current, last_seen=now))
        return updated if updated is not None else record

    def scan(self) -> Iterator[SessionRecord]:
        """Iterate over every stored session (for the sweeper)."""
        for key in self.store.scan(SESSION_PREFIX):
            record = self._decode(self.store.get(key), None)
            if record is not None:
                yield record

    # -- the provider-session index ---------------------------------------------

    def _index_key(self, kind: str, value: str) -> str:
        material = "\0".join((self.issuer, value)).encode("utf-8", "surrogatepass")
        return INDEX_PREFIXES[kind] + hashlib.sha256(material).hexdigest()

    def _index(self, record: SessionRecord) -> None:
        """Add ``record`` to the index of its provider ``sid`` and of its subject."""
        for kind, value in (("sid", record.op_sid), ("sub", record.token.subject)):
            if value:
                self._rewrite_index(self._index_key(kind, value), add=_key(record.sid))

    def _rewrite_index(self, index_key: str, *, add: str | None = None) -> None:
        """Drop ended sessions from an index entry (and add one), under its lock."""
        with self.store.lock(f"index-write:{index_key}", ttl=10.0, wait=5.0) as acquired:
            if not acquired and add is None:
                return  # a cleanup can wait for the next reader
            keys = [k for k in self._index_keys(index_key) if self.store.get(k) is not None]
            if add is not None and add not in keys:
                keys.append(add)
            keys = keys[-_INDEX_MAX:]
            if keys:
                ttl = self.max_lifetime + _GRACE  # no record outlives this
                self.store.set(index_key, json.dumps(keys).encode(), ttl)
            else:
                self.store.delete(index_key)

    def _index_keys(self, index_key: str) -> list[str]:
        raw = self.store.get(index_key)
        try:
            keys = json.loads(raw) if raw is not None else []
        except ValueError:
            return []
        if not isinstance(keys, list):
            return []
        return [k for k in keys if isinstance(k, str) and k.startswith(SESSION_PREFIX)]

    def sessions_of(
        self, *, op_sid: str | None = None, sub: str | None = None
    ) -> list[SessionRecord]:
        """The live sessions of a provider session (``op_sid``) or, without one, a subject.

        With both, only sessions of that ``op_sid`` whose subject is ``sub``.
        Entries of ended sessions are dropped from the index on the way.
        """
        if op_sid:
            index_key = self._index_key("sid", op_sid)
        elif sub:
            index_key = self._index_key("sub", sub)
        else:
            return []
        found: list[SessionRecord] = []
        stale = False
        for key in self._index_keys(index_key):
            record = self._decode(self.store.get(key), None)
            if record is None:
                stale = True
                continue
            if op_sid and record.op_sid != op_sid:
                continue
            if sub and record.token.subject != sub:
                continue
            found.append(record)
        if stale:
            self._rewrite_index(index_key)
        return found
