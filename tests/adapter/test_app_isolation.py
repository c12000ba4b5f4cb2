"""Two apps on one host are as separate as two hosts.

Browsers send a host's cookies to every port of it, and the default store is a
directory of the host: the apps below run side by side on loopback, each with
its own registered client and the same secret, and one cookie jar visits both,
as one browser would.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import httpx
import pytest

from dash_oauth_otel import DiskcacheStore
from tests.adapter.conftest import serve_app
from tests.cookies import session_cookie
from tests.idp.harness import login


@pytest.fixture
def host_tmp(tmp_path, monkeypatch) -> Path:
    """The host's temporary directory, where the default store lives, for this test only."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _log_in(http: httpx.Client, origin: str, username: str) -> None:
    # Each login at the provider in a fresh jar: two users, no single sign-on.
    start = http.get(f"{origin}/oauth/login?next=/")
    landed = login(start.headers["location"], username=username).deliver(http)
    assert landed.status_code == 303, landed.text[:300]


def _status(http: httpx.Client, origin: str) -> dict:
    return http.get(f"{origin}/oauth/status").json()


def test_one_browser_two_apps_with_default_stores(idp, host_tmp, telemetry):
    """Signed in to A only, the browser is not signed in to B; then to both, as two users."""
    no_store = {"state_store": None}
    with (
        serve_app(idp, client_options=no_store) as app_a,
        serve_app(idp, client_options=no_store) as app_b,
        httpx.Client(timeout=15) as browser,
    ):
        store_a, store_b = app_a.module.sessions.store, app_b.module.sessions.store
        assert isinstance(store_a, DiskcacheStore) and isinstance(store_b, DiskcacheStore)
        assert store_a.directory != store_b.directory
        assert Path(store_a.directory).parent == Path(store_b.directory).parent
        assert Path(store_a.directory).is_relative_to(host_tmp)

        _log_in(browser, app_a.origin, "alice")
        assert _status(browser, app_a.origin)["user"]["sub"] == "alice"
        assert _status(browser, app_b.origin)["authenticated"] is False

        _log_in(browser, app_b.origin, "bob")
        assert _status(browser, app_b.origin)["user"]["sub"] == "bob"
        assert _status(browser, app_a.origin)["user"]["sub"] == "alice"
        names = {c.name for c in browser.cookies.jar if "dash_oauth_session" in c.name}
        assert len(names) == 2


def test_a_record_under_another_client_is_refused_in_a_shared_store(idp, tmp_path, telemetry):
    """One store directory and namespace for both apps, the same secret: A's session
    presented to B (its id under B's cookie name) names a record sealed for client A,
    which B refuses with an audit event and does not delete."""
    shared = DiskcacheStore(tmp_path / "shared")
    with (
        serve_app(idp, client_options={"state_store": shared}) as app_a,
        serve_app(idp, client_options={"state_store": shared}) as app_b,
        app_a.http() as browser_a,
        app_b.http() as browser_b,
    ):
        _log_in(browser_a, app_a.origin, "alice")
        sid = session_cookie(browser_a.cookies)
        assert sid is not None
        browser_b.cookies.set(app_b.module.cookies.session_name, sid, domain="127.0.0.1")
        assert _status(browser_b, app_b.origin)["authenticated"] is False
        page = browser_b.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 302 and "/oauth/login" in page.headers["location"]
        rejected = telemetry.events("audit_session_rejected")
        assert rejected and rejected[0]["reason"] == "foreign_or_tampered"
        assert (
            rejected[0]["client_id_digest"]
            != telemetry.events("audit_session_started")[0]["client_id_digest"]
        )
        # A's own session is untouched.
        assert _status(browser_a, app_a.origin)["user"]["sub"] == "alice"


def test_a_record_copied_into_another_apps_store_is_refused(idp, tmp_path, telemetry):
    """The bytes of A's record, copied into B's store under the key B would read."""
    with serve_app(idp) as app_a, serve_app(idp) as app_b, app_a.http() as browser_a:
        _log_in(browser_a, app_a.origin, "alice")
        sid = session_cookie(browser_a.cookies)
        assert sid is not None
        key = "session:" + hashlib.sha256(sid.encode()).hexdigest()
        raw = app_a.module.sessions.store.get(key)
        assert raw is not None
        app_b.module.sessions.store.set(key, raw, 600)
        assert app_b.module.sessions.load(sid) is None
        assert telemetry.events("audit_session_rejected")
        assert app_a.module.sessions.load(sid) is not None


def test_two_modules_in_one_process_keep_their_own_audit_hooks(idp):
    """Each app's events reach its own hook: the second constructor changes nothing of the first."""
    seen_a: list[dict] = []
    seen_b: list[dict] = []
    with (
        serve_app(idp, audit_hook=seen_a.append) as app_a,
        serve_app(idp, audit_hook=seen_b.append) as app_b,
        httpx.Client(timeout=15) as browser,
    ):
        _log_in(browser, app_a.origin, "alice")
        _log_in(browser, app_b.origin, "bob")
        digest_a = app_a.client.audit_fields()["client_id_digest"]
        digest_b = app_b.client.audit_fields()["client_id_digest"]
    started_a = [e for e in seen_a if e["type"] == "audit_session_started"]
    started_b = [e for e in seen_b if e["type"] == "audit_session_started"]
    assert len(started_a) == 1 and len(started_b) == 1
    assert {e.get("client_id_digest") for e in seen_a} - {None} == {digest_a}
    assert {e.get("client_id_digest") for e in seen_b} - {None} == {digest_b}
