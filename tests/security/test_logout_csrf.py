"""Logout CSRF: only the app's own page, with its session's token, can end a session.

``tests/adapter/test_http_flow.py::test_logout_requires_csrf_and_revokes`` covers
a wrong token and a cross-origin POST with the right token; here are the other
forgeries, each leaving the session and its tokens untouched.
"""

from __future__ import annotations

import pytest

from dash_oauth_otel import introspect_token
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.logout import is_logout_answer
from tests.security.support import error_code


@pytest.fixture(scope="module")
def app(idp_server):
    with serve_app(idp_server) as running:
        yield running


def _signed_in(exposure, app, username="alice"):
    http = exposure.browser(app)
    exposure.sign_in(http, username=username)
    status = http.get("/oauth/status").json()
    assert status["authenticated"] and status["user"]["sub"] == username
    return http, status["csrf_token"]


def _still_signed_in(app, http, username="alice"):
    status = http.get("/oauth/status").json()
    assert status["authenticated"] is True and status["user"]["sub"] == username
    record = app.module.sessions.load(session_cookie(http.cookies))
    assert record is not None
    assert introspect_token(app.client, record.token, "refresh").active


FORGERIES = {
    "cross-origin": lambda own, other: ({"csrf_token": own}, {"Origin": "https://evil.example"}),
    "cross-origin-referer": lambda own, other: (
        {"csrf_token": own},
        {"Referer": "https://evil.example/page"},
    ),
    "origin-null": lambda own, other: ({"csrf_token": own}, {"Origin": "null"}),
    "missing-token": lambda own, other: ({}, {}),
    "empty-token": lambda own, other: ({"csrf_token": ""}, {}),
    "other-sessions-token": lambda own, other: ({"csrf_token": other}, {}),
    "header-other-token": lambda own, other: ({}, {"X-CSRF-Token": other}),
    "truncated-token": lambda own, other: ({"csrf_token": own[:-1]}, {}),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_logout_is_refused(app, exposure, telemetry, forgery):
    """A logout that did not come from the app's page for this session.

    A page elsewhere posting to ``/oauth/logout`` (cross-origin, or from a
    sandboxed ``Origin: null`` frame), no token, or another session's token
    (Bob's, valid for Bob only): 403, an ``error`` audit event with reason
    ``csrf_rejected``, and both sessions stay as they were, tokens still active.
    """
    alice, alice_token = _signed_in(exposure, app)
    bob, bob_token = _signed_in(exposure, app, "bob")
    data, headers = FORGERIES[forgery](alice_token, bob_token)
    refused = alice.post("/oauth/logout", data=data, headers=headers)
    assert refused.status_code == 403
    assert error_code(refused) == "csrf_rejected"
    assert "set-cookie" not in refused.headers  # no cookie cleared
    refusals = [e for e in telemetry.events("error") if e.get("reason") == "csrf_rejected"]
    assert len(refusals) == 1 and refusals[0]["phase"] == "logout"
    assert telemetry.events("audit_logout") == []
    assert telemetry.events("audit_session_ended") == []
    assert telemetry.events("audit_token_revocation") == []
    _still_signed_in(app, alice)
    _still_signed_in(app, bob, "bob")


def test_logout_cannot_be_triggered_by_get_or_query_token(app, exposure, telemetry):
    """``<img src=/oauth/logout>`` and a token in the URL (which would leak in logs)."""
    http, token = _signed_in(exposure, app)
    # A GET is not the logout route (Dash's page route answers it): nothing ends.
    assert http.get("/oauth/logout").status_code in (200, 404, 405)
    _still_signed_in(app, http)
    assert http.post(f"/oauth/logout?csrf_token={token}").status_code == 403
    _still_signed_in(app, http)
    # The real thing, from the app's page, still works afterwards.
    done = http.post("/oauth/logout", data={"csrf_token": token}, headers={"Origin": app.origin})
    assert is_logout_answer(done)
    assert http.get("/oauth/status").json()["authenticated"] is False
    assert [e["reason"] for e in telemetry.events("audit_session_ended")] == ["logout"]


def test_token_of_an_ended_session_is_useless(app, exposure, telemetry):
    """A CSRF token captured before logout cannot end the user's next session."""
    http, old_token = _signed_in(exposure, app)
    http.post("/oauth/logout", data={"csrf_token": old_token})
    exposure.sign_in(http)
    new_token = http.get("/oauth/status").json()["csrf_token"]
    assert new_token != old_token
    assert http.post("/oauth/logout", data={"csrf_token": old_token}).status_code == 403
    _still_signed_in(app, http)
