"""OpenID Connect Front-Channel Logout 1.0 in a real browser.

The provider's part is played by a page on another site (``localhost``, while
the app is on ``127.0.0.1``) that frames the app's ``frontchannel_logout_uri``
with ``iss`` and ``sid``, as a provider's logout page does.  The cross-site
iframe carries no ``SameSite=Lax`` cookie: the app finds the session by ``sid``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode

from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.adapter.conftest import serve_app
from tests.browser.conftest import app_status
from tests.browser.conftest import log_in
from tests.browser.conftest import session_id


def _framing_site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    src = parse_qs(environ.get("QUERY_STRING", "")).get("src", [""])[0]
    body = (
        "<!doctype html><title>Provider logout</title><p>Signing you out of every app…</p>"
        f'<iframe id=rp src="{html.escape(src)}" width=400 height=100></iframe>'
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]


@contextmanager
def framing_site() -> Iterator[str]:
    """A page on another site that frames ``?src=``; yields its origin."""
    server = make_server("127.0.0.1", 0, _framing_site, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def _frame(page: Any, site: str, running: Any, **params: str) -> Any:
    """Open the framing page on ``site`` with the app's front-channel URI; return the frame."""
    src = f"{running.origin}{running.module.url('frontchannel-logout')}?{urlencode(params)}"
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r) if r.url == src else None)
    page.goto(f"{site}/?{urlencode({'src': src})}")
    frame = page.frame_locator("#rp")
    expect(frame.locator("p")).to_be_visible()
    [response] = responses
    return frame, response


def test_oidcc_client_test_front_channel_logout_op_initiated(idp, context, page, telemetry):
    with serve_app(idp, backchannel_logout=True) as running, framing_site() as site:
        log_in(page, running)
        record = running.module.sessions.load(session_id(context))
        assert record is not None and record.op_sid
        frame, response = _frame(
            page, site, running, iss=running.client.provider.issuer, sid=record.op_sid
        )
        expect(frame.locator("#dash-oauth-signed-out")).to_be_visible()
        assert response.status == 200
        assert response.headers["cache-control"] == "no-store"
        assert "x-frame-options" not in response.headers
        # The framed request carried no session cookie: the sid found the session.
        assert "dash_oauth_session" not in response.request.all_headers().get("cookie", "")
        assert running.module.sessions.load(record.sid) is None
        assert app_status(context, running)["authenticated"] is False
    [done] = telemetry.events("audit_frontchannel_logout")
    assert done["sessions_ended"] == 1 and done["sid_digest"]
    [ended] = telemetry.events("audit_session_ended")
    assert ended["reason"] == "frontchannel_logout"
    [span] = telemetry.spans("dash_oauth_otel.frontchannel_logout")
    assert span.attributes["oauth.logout.sessions_ended"] == 1
    assert record.op_sid not in str(dict(span.attributes)) + str(done)


def test_front_channel_logout_from_another_issuer_is_refused(idp, context, page, telemetry):
    with serve_app(idp, backchannel_logout=True) as running, framing_site() as site:
        log_in(page, running)
        record = running.module.sessions.load(session_id(context))
        assert record is not None and record.op_sid
        frame, response = _frame(page, site, running, iss=site, sid=record.op_sid)
        expect(frame.locator("#dash-oauth-logout-refused")).to_be_visible()
        assert response.status == 400 and response.headers["cache-control"] == "no-store"
        frame, response = _frame(page, site, running, sid=record.op_sid)
        assert response.status == 400
        assert running.module.sessions.load(record.sid) is not None
        assert app_status(context, running)["authenticated"] is True
    reasons = [e["reason"] for e in telemetry.events("audit_frontchannel_logout_rejected")]
    assert reasons == ["wrong_issuer", "missing_iss"]
    assert telemetry.events("audit_session_ended") == []
    spans = telemetry.spans("dash_oauth_otel.frontchannel_logout")
    assert [s.status.status_code.name for s in spans] == ["ERROR", "ERROR"]
