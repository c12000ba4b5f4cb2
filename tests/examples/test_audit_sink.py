"""The compliance sink example: a real login leaves a JSON-lines audit trail without secrets."""

from __future__ import annotations

import json
import logging

from examples.audit_sink import install_json_lines_sink
from tests.adapter.conftest import app_and_browser
from tests.cookies import session_cookie
from tests.idp.harness import login


def test_login_and_logout_are_written_as_json_lines(idp, tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    handler = install_json_lines_sink(path)
    try:
        with app_and_browser(idp) as (running, http):
            start = http.get("/oauth/login?next=/")
            result = login(start.headers["location"], http_client=http)
            result.deliver(http)
            sid = session_cookie(http.cookies)
            token = running.module.sessions.load(sid).token
            csrf = http.get("/oauth/status").json()["csrf_token"]
            http.post("/oauth/logout", data={"csrf_token": csrf})
    finally:
        logging.getLogger("dash_oauth_otel.audit").removeHandler(handler)
    lines = path.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    types = [e["type"] for e in events]
    for expected in ("audit_redirect_issued", "audit_login_success", "audit_logout"):
        assert expected in types
    login_events = [e for e in events if e["type"] == "audit_login_success"]
    assert login_events[0]["trace_id"] == events[0]["trace_id"]
    text = path.read_text()
    for secret in (token.access_token, token.refresh_token, token.id_token, result.code, sid):
        assert secret not in text
