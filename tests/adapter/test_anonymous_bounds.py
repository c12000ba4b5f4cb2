"""What a request without a session may make the module store or ask the provider: bounded.

Over plain HTTP against a real app and the real test provider; the store is
read in the store itself, the provider's PAR and token requests are counted
at the provider.
"""

from __future__ import annotations

import pytest

from dash_oauth_otel.core.sealing import Sealer
from tests.adapter.conftest import serve_app
from tests.idp.harness import login

HANDLE_PREFIX = "formpost:"
RESPONSE_PARAMETERS = ("code", "state", "iss", "error", "error_description", "error_uri")


def _records(running) -> dict[str, bytes]:
    store = running.client.state_store
    return {key: store.get(key) for key in store.scan("")}


def _sign_in(http, next_path="/"):
    start = http.get(f"/oauth/login?next={next_path}")
    assert start.status_code == 302, start.text
    return login(start.headers["location"], http_client=http)


def test_callback_post_in_query_mode_is_405(idp, telemetry):
    with serve_app(idp) as running, running.http() as http:
        result = _sign_in(http)
        before = _records(running)
        refused = http.post("/oauth/callback", data={**result.params, "x": "y" * 1000})
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET"
        assert refused.headers["cache-control"] == "no-store"
        assert refused.json()["error"] == "method_not_allowed"
        assert _records(running) == before
        assert [e["reason"] for e in telemetry.events("audit_route_refused")] == [
            "method_not_allowed"
        ]
        # The real redirect still completes the login.
        assert result.deliver(http).status_code == 303


def _bridge_records(running) -> dict[str, bytes]:
    return {k: v for k, v in _records(running).items() if k.startswith(HANDLE_PREFIX)}


def test_form_post_keeps_only_the_spec_parameters_once_per_state(idp, telemetry):
    with serve_app(idp, response_mode="form_post") as running, running.http() as http:
        result = _sign_in(http)
        assert result.response_mode == "form_post"
        padded = {**result.params, "session_state": "s" * 1000}
        padded |= {f"p{i}": "x" * 1000 for i in range(10)}
        first = http.post("/oauth/callback", data=padded)
        assert first.status_code == 303
        # The same state again, with another code: the same handle, nothing added.
        again = http.post("/oauth/callback", data={**result.params, "code": "another"})
        assert again.headers["location"] == first.headers["location"]
        kept = _bridge_records(running)
        assert len(kept) == 1
        sealer = Sealer(running.module._secret, "form_post", context=running.client.record_context)
        (raw,) = kept.values()
        params = sealer.unseal(raw.decode())["p"]
        assert set(params) <= set(RESPONSE_PARAMETERS)
        assert {"code", "state"} <= set(params)
        assert params["code"] == result.params["code"]  # the first answer, unchanged
        assert len(raw) < 4096
        landed = http.get(first.headers["location"])
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        assert http.get("/oauth/status").json()["authenticated"] is True


def test_form_post_without_a_pending_state_stores_nothing(idp, telemetry):
    with serve_app(idp, response_mode="form_post") as running, running.http() as http:
        result = _sign_in(http)
        before = _records(running)
        # A garbage state, then a real state presented by another browser.
        garbage = http.post("/oauth/callback", data={**result.params, "state": "A" * 300})
        assert garbage.status_code == 400
        with running.http() as other:
            other.cookies.set(
                running.module.cookies.binding_name, "b" * 43, domain="127.0.0.1", path="/"
            )
            foreign = other.post("/oauth/callback", data=result.params)
            assert foreign.status_code == 400
        assert _records(running) == before
        reasons = [e["reason"] for e in telemetry.events("audit_callback_validation_failed")]
        assert "browser_mismatch" in reasons


def test_strict_callback_step_stores_nothing_before_the_state_checks_out(idp, telemetry):
    with serve_app(idp, cookie_samesite="Strict") as running, running.http() as http:
        result = _sign_in(http)
        before = _records(running)
        with running.http() as stranger:
            forged = {**result.params, "state": "A" * 300, "code": "c" * 3000}
            assert stranger.get("/oauth/callback", params=forged).status_code == 400
            assert _records(running) == before
            # The provider's real redirect, without the Strict cookie: one step, one record.
            step = stranger.get("/oauth/callback", params=result.params)
            again = stranger.get("/oauth/callback", params=result.params)
        assert step.status_code == again.status_code == 200
        assert len(_bridge_records(running)) == 1


def test_head_login_writes_nothing_and_calls_nothing(idp, telemetry):
    with serve_app(idp) as running, running.http() as http:
        before = _records(running)
        idp.reset_received()
        for _ in range(5):
            answer = http.head("/oauth/login?next=/x")
            assert answer.status_code == 200
            assert "set-cookie" not in answer.headers
            assert answer.headers["cache-control"] == "no-store"
        assert _records(running) == before
        assert idp.received()["par"] == 0
        assert telemetry.events("audit_redirect_issued") == []


def test_login_start_makes_one_provider_call_and_none_with_a_session(idp, telemetry):
    with serve_app(idp) as running, running.http() as http:
        idp.reset_received()
        result = _sign_in(http)
        assert idp.received()["par"] == 1
        result.deliver(http)
        idp.reset_received()
        before = _records(running)
        again = http.get("/oauth/login?next=/reports")
        assert again.status_code == 302 and again.headers["location"] == "/reports"
        assert idp.received() == {"par": 0, "token": 0}
        assert set(_records(running)) == set(before)


def test_too_many_login_starts_get_the_429_page(idp, telemetry):
    options = {"login_rate_per_second": 0.01, "login_burst": 2}
    with serve_app(idp, **options) as running, running.http() as http:
        assert http.get("/oauth/login").status_code == 302
        assert http.get("/oauth/login").status_code == 302
        before = _records(running)
        idp.reset_received()
        refused = http.get("/oauth/login?next=/reports", headers={"Accept": "text/html"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["cache-control"] == "no-store"
        assert "set-cookie" not in refused.headers
        assert "rate_limited" in refused.text
        assert "/oauth/login?next=%2Freports" in refused.text  # "Try again" keeps the page
        assert _records(running) == before
        assert idp.received()["par"] == 0
        (event,) = telemetry.events("audit_login_rate_limited")
        assert event["reason"] == "login_rate_limited" and event["retry_after"] >= 1


def _state_keys(running) -> set[str]:
    return {k for k in _records(running) if k.startswith("state:")}


def test_pending_logins_per_browser_are_capped_oldest_first(idp, telemetry):
    with (
        serve_app(idp, max_pending_logins_per_browser=2) as running,
        running.http() as http,
    ):
        oldest = _sign_in(http)  # at the provider, not yet back
        _sign_in(http)
        assert len(_state_keys(running)) == 2
        newest = _sign_in(http)
        assert len(_state_keys(running)) == 2  # the oldest one went
        (event,) = telemetry.events("audit_pending_login_evicted")
        assert event["evicted"] == 1 and event["limit"] == 2
        failed = oldest.deliver(http)
        assert failed.status_code == 400
        landed = newest.deliver(http)
        assert landed.status_code == 303, landed.text
        assert http.get("/oauth/status").json()["authenticated"] is True


def test_refused_logouts_write_nothing(idp, telemetry):
    with serve_app(idp) as running, running.http() as http:
        _sign_in(http).deliver(http)
        before = _records(running)
        refused = http.post("/oauth/logout", data={"csrf_token": "wrong"})
        assert refused.status_code == 403
        assert _records(running) == before
        with running.http() as stranger:
            for _ in range(3):  # no session, a binding cookie, no pending login
                stranger.cookies.set(
                    running.module.cookies.binding_name, "z" * 43, domain="127.0.0.1", path="/"
                )
                answer = stranger.post("/oauth/logout", data={"csrf_token": "wrong"})
                assert answer.status_code == 303
        assert _records(running) == before
        assert http.get("/oauth/status").json()["authenticated"] is True


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
@pytest.mark.parametrize("path", ["/oauth/anything", "/oauth/", "/oauth/login/x", "/oauth/a/b"])
def test_unknown_module_routes_are_404(running_app, telemetry, method, path):
    with running_app.http() as http:
        before = _records(running_app)
        answer = http.request(method, path)
        assert answer.status_code == 404
        assert answer.headers["cache-control"] == "no-store"
        if method != "HEAD":
            assert answer.json()["error"] == "not_found"
        assert _records(running_app) == before
        assert [e["reason"] for e in telemetry.events("audit_route_refused")] == ["unknown_route"]


def test_known_module_route_with_another_method_is_405(running_app, telemetry):
    with running_app.http() as http:
        answer = http.get("/oauth/logout")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"


def test_the_retry_link_of_the_429_page_is_same_origin(idp):
    with serve_app(idp, login_rate_per_second=0.01, login_burst=1) as running:
        with running.http() as http:
            http.get("/oauth/login")
            refused = http.get("/oauth/login", params={"next": "https://evil.example/"})
        assert refused.status_code == 429
        assert "evil.example" not in refused.text
