"""A store that fails: the browser gets a plain 503 page, the operator the details.

The failure is real: a Redis server that is not there.
"""

from __future__ import annotations

import logging
import socket

from dash_oauth_otel import RedisStore
from tests.adapter.conftest import serve_app


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_plain(page, *leaks: str) -> None:
    assert page.status_code == 503, page.text[:300]
    assert page.headers["Cache-Control"] == "no-store"
    for leak in leaks:
        assert leak not in page.text
    for detail in ("sqlite", "Error:", "Traceback", "redis://"):
        assert detail not in page.text


def test_an_unreachable_redis_is_reported_without_its_address(idp, telemetry, caplog):
    port = _closed_port()
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    with serve_app(idp, client_options={"state_store": store}) as running, running.http() as http:
        caplog.set_level(logging.ERROR, logger="dash_oauth_otel")
        page = http.get("/oauth/login?next=/", headers={"Accept": "text/html"})
        _assert_plain(page, str(port))
        assert "try again in a moment" in page.text
        # With a session cookie the guard must read the store: a Dash callback
        # gets JSON, a page the same plain page.
        http.cookies.set(running.module.cookies.session_name, "s" * 43, domain="127.0.0.1")
        callback = http.post("/_dash-update-component", json={})
        assert callback.status_code == 503
        assert callback.json()["error"] == "store_error" and str(port) not in callback.text
        _assert_plain(http.get("/reports", headers={"Accept": "text/html"}), str(port))
    assert any(str(port) in record.getMessage() for record in caplog.records)
    errors = [e for e in telemetry.events("error") if e.get("reason") == "store_unavailable"]
    assert errors and all(str(port) not in str(e) for e in errors)
