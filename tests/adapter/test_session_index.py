"""The store index from a provider session id (and a subject) to the app's sessions."""

from __future__ import annotations

import json

import pytest

from dash_oauth_otel import DiskcacheStore
from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthToken
from dash_oauth_otel.adapter.sessions import INDEX_PREFIXES
from dash_oauth_otel.adapter.sessions import SessionManager
from dash_oauth_otel.adapter.sessions import SessionRecord

SECRET = "session-index-secret-Vb3nK8qZr2Lw7YtD9mXc4PfH6sJ"


def token(sub: str, sid: str | None = None) -> OAuthToken:
    claims = {"sub": sub, **({"sid": sid} if sid else {})}
    return OAuthToken(access_token=f"at-{sub}", id_token_claims=claims)


@pytest.fixture(params=["memory", "diskcache"])
def sessions(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else DiskcacheStore(str(tmp_path))
    return SessionManager(
        store=store, secret=SECRET, idle_timeout=600, max_lifetime=3600, issuer="https://op"
    )


def test_sessions_are_found_by_provider_sid(sessions):
    first = sessions.create(token("alice", "op-1"))
    second = sessions.create(token("alice", "op-1"))  # another browser, same provider session
    other = sessions.create(token("alice", "op-2"))
    assert first.op_sid == "op-1"
    found = {r.sid for r in sessions.sessions_of(op_sid="op-1")}
    assert found == {first.sid, second.sid}
    assert [r.sid for r in sessions.sessions_of(op_sid="op-2")] == [other.sid]
    assert sessions.sessions_of(op_sid="op-1", sub="bob") == []
    assert sessions.sessions_of(op_sid="unknown") == []


def test_sessions_are_found_by_subject(sessions):
    one = sessions.create(token("bob", "op-3"))
    two = sessions.create(token("bob"))
    sessions.create(token("carol"))
    assert {r.sid for r in sessions.sessions_of(sub="bob")} == {one.sid, two.sid}
    assert sessions.sessions_of() == []


def test_the_index_is_scoped_by_issuer(sessions):
    sessions.create(token("alice", "op-1"))
    elsewhere = SessionManager(
        store=sessions.store, secret=SECRET, idle_timeout=600, max_lifetime=3600, issuer="https://x"
    )
    assert elsewhere.sessions_of(op_sid="op-1") == []


def test_ended_sessions_are_dropped_from_the_index_when_read(sessions):
    kept = sessions.create(token("alice", "op-1"))
    ended = sessions.create(token("alice", "op-1"))
    sessions.delete(ended.sid)
    assert [r.sid for r in sessions.sessions_of(op_sid="op-1")] == [kept.sid]
    keys = list(sessions.store.scan(INDEX_PREFIXES["sid"]))
    assert len(keys) == 1
    assert len(json.loads(sessions.store.get(keys[0]))) == 1


def test_the_index_holds_no_session_id_or_provider_sid(sessions):
    record = sessions.create(token("alice", "op-secret-sid"))
    for prefix in INDEX_PREFIXES.values():
        for key in sessions.store.scan(prefix):
            text = key + sessions.store.get(key).decode()
            assert record.sid not in text and "op-secret-sid" not in text and "alice" not in text


def test_records_without_a_provider_sid_still_load():
    record = SessionRecord(
        sid="s", token=OAuthToken(access_token="a"), created_at=1, last_seen=1, auth_time=1
    )
    data = record.to_json()
    del data["op_sid"]
    assert SessionRecord.from_json(data).op_sid is None
    assert SessionRecord.from_json({**data, "op_sid": "op"}).op_sid == "op"
