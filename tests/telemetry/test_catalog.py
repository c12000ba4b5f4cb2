"""The span catalog checked against real flows.

Every flow runs once per test process (:func:`catalog_run`) against the real test
provider, through the core API and over HTTP through the Dash module, with the
SDK's in-memory exporters of ``tests/otel.py``.  The tests below then check the
recorded telemetry: every catalogued span is emitted, each span has its
catalogued parent, one login is one OpenTelemetry trace, attribute keys are
catalogued and never collide, and no secret known to the test appears in a span,
an event, a log record or a metric.  ``test_vignette_drift.py`` reuses the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.trace import StatusCode

from dash_oauth_otel import CallbackIssuerError
from dash_oauth_otel import CallbackQueryError
from dash_oauth_otel import HTTPError
from dash_oauth_otel import IDTokenError
from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import OAuthProvider
from dash_oauth_otel import StateError
from dash_oauth_otel import TaskBindingError
from dash_oauth_otel import TokenEndpointError
from dash_oauth_otel import complete_callback
from dash_oauth_otel import get_userinfo
from dash_oauth_otel import handle_callback
from dash_oauth_otel import introspect_token
from dash_oauth_otel import oidc_discover
from dash_oauth_otel import prepare_call
from dash_oauth_otel import refresh_token
from dash_oauth_otel import revoke_token
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.core.state import peek_one_time
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import set_audit_hook
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry import switches
from dash_oauth_otel.telemetry.metrics import LOGIN_OUTCOMES
from dash_oauth_otel.workers import Dispatcher
from dash_oauth_otel.workers.binding import TaskBinding
from dash_oauth_otel.workers.binding import outcome_sealer
from tests import otel
from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.cookies import binding_cookie
from tests.cookies import session_cookie
from tests.idp.harness import DEFAULT_REDIRECT_URI
from tests.idp.harness import STATIC_CLIENTS
from tests.idp.harness import LoginResult
from tests.idp.harness import TestProvider
from tests.idp.harness import login
from tests.idp.harness import logout

ROOT = Path(__file__).resolve().parents[2]
VIGNETTE = ROOT / "vignettes" / "opentelemetry.md"
STATE_KEY = "catalog-state-key-u8jzPde0IgxLd6GncfBAepfJBd0K"

WORKER_SPANS = frozenset(
    {
        spans.CALLBACK_WORKER,
        spans.REFRESH_WORKER,
        spans.TOKEN_REVOKE_WORKER,
        spans.TOKEN_INTROSPECT_WORKER,
    }
)
CATALOG = frozenset(getattr(spans, name) for name in spans.__all__ if name.isupper())
ATTRIBUTE_KEYS = frozenset(getattr(attr, name) for name in attr.__all__)
EXCEPTION_EVENT_KEYS = frozenset(
    {"exception.type", "exception.message", "dash_oauth_otel.error.reason"}
)
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.")

# Parent rules of the catalog (``None``: a root span).
PARENTS: dict[str, set[str | None]] = {
    spans.MODULE_INIT: {None},
    spans.LOGIN_REQUEST: {None},
    spans.LOGIN_PAR: {spans.LOGIN_REQUEST},
    spans.LOGIN_PAR_HTTP: {spans.LOGIN_PAR},
    spans.CALLBACK: {spans.LOGIN_REQUEST, None},
    spans.FORM_POST: {None},
    spans.FORM_POST_BRIDGE: {None},
    spans.CALLBACK_VALIDATE: {spans.CALLBACK, spans.TOKEN_VERIFY},
    spans.TOKEN_EXCHANGE: {spans.CALLBACK},
    spans.TOKEN_EXCHANGE_HTTP: {spans.TOKEN_EXCHANGE, spans.REFRESH},
    spans.TOKEN_VERIFY: {spans.CALLBACK, spans.REFRESH},
    spans.USERINFO: {spans.TOKEN_VERIFY, None},
    spans.USERINFO_HTTP: {spans.USERINFO},
    spans.REFRESH: {None},
    spans.LOGOUT: {None},
    spans.LOGOUT_RETURN: {None},
    spans.SESSION_END_REVOKE: {None},
    spans.TOKEN_REVOKE: {spans.SESSION_END_REVOKE, spans.LOGOUT, spans.CALLBACK, None},
    spans.TOKEN_REVOKE_HTTP: {spans.TOKEN_REVOKE},
    spans.TOKEN_INTROSPECT: {None},
    spans.TOKEN_INTROSPECT_HTTP: {spans.TOKEN_INTROSPECT},
    spans.DISCOVERY: {None},
    spans.DISCOVERY_HTTP: {spans.DISCOVERY},
    spans.JWKS: {spans.CALLBACK_VALIDATE},
    spans.JWKS_HTTP: {spans.JWKS},
    spans.BACKCHANNEL_LOGOUT: {None},
    spans.FRONTCHANNEL_LOGOUT: {None},
}
HTTP_SPANS = frozenset(name for name in CATALOG if name.endswith(".http"))


# -- recording ---------------------------------------------------------------------


@dataclass
class Flow:
    """What one flow emitted, and what the test knows about it."""

    name: str
    spans: list[ReadableSpan]
    audit: list[dict[str, Any]]
    logs: list[Any]
    log_lines: list[tuple[str, str]]
    """``(levelname, message)`` of each record of the ``dash_oauth_otel.audit`` logger."""
    text: str
    secrets: dict[str, str]
    logins: list[str]
    """Correlation ids of the logins the flow started (``AuthorizationRequest.trace_id``)."""

    def by_id(self) -> dict[int, ReadableSpan]:
        return {s.context.span_id: s for s in self.spans}

    def parent_of(self, span: ReadableSpan) -> ReadableSpan | None:
        if span.parent is None:
            return None
        found = self.by_id().get(span.parent.span_id)
        assert found is not None, f"{self.name}: the parent of {span.name} was not recorded"
        return found

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]


@dataclass
class Metric:
    """One instrument of the package as collected at the end of the run."""

    name: str
    unit: str
    points: list[dict[str, Any]]


@dataclass
class CatalogRun:
    """Every flow of the catalog, run once."""

    flows: dict[str, Flow] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for f in self.flows.values() for s in f.spans if name in (None, s.name)]

    def audit(self) -> list[dict[str, Any]]:
        return [e for f in self.flows.values() for e in f.audit]

    def logs(self) -> list[Any]:
        return [r for f in self.flows.values() for r in f.logs]


@dataclass
class Notes:
    """Filled in by a flow: the secrets it saw and the logins it started."""

    secrets: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    """The flow's audit events so far (to wait for work finishing in the background)."""

    def secret(self, label: str, value: str | None) -> None:
        if value:
            self.secrets[f"{label}#{len(self.secrets)}"] = value


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


class _Recorder:
    def __init__(self, run: CatalogRun) -> None:
        self.run = run
        otel.install()

    @contextmanager
    def flow(self, name: str) -> Iterator[Notes]:
        otel._spans.clear()
        otel._logs_exporter.clear()
        captured = otel.Telemetry()
        notes = Notes(audit=captured.audit)
        handler = _Lines()
        logger = logging.getLogger("dash_oauth_otel.audit")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        set_audit_hook(captured.audit.append)
        try:
            yield notes
        finally:
            set_audit_hook(None)
            logger.removeHandler(handler)
            logger.setLevel(level)
            self.run.flows[name] = Flow(
                name=name,
                spans=captured.spans(),
                audit=list(captured.audit),
                logs=captured.log_records(),
                log_lines=handler.lines,
                text="\n".join([captured.exported_text(), *(m for _, m in handler.lines)]),
                secrets=notes.secrets,
                logins=notes.logins,
            )
            otel._spans.clear()
            otel._logs_exporter.clear()


def _collect_metrics(run: CatalogRun) -> None:
    data = otel._metrics.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name != "dash_oauth_otel":
                continue
            for metric in scope.metrics:
                found = run.metrics.setdefault(metric.name, Metric(metric.name, metric.unit, []))
                found.points.extend(dict(p.attributes or {}) for p in metric.data.data_points)


# -- flows -------------------------------------------------------------------------


def _provider(idp: TestProvider) -> OAuthProvider:
    return oidc_discover(idp.issuer, name="test-idp", allow_insecure_loopback=True)


def _client(provider: OAuthProvider, client_id: str = "conf-basic", **options: Any) -> OAuthClient:
    registered = STATIC_CLIENTS[client_id]
    settings: dict[str, Any] = {
        "provider": provider,
        "client_id": client_id,
        "client_secret": registered.client_secret,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "scopes": ("profile", "email", "groups"),
        "state_key": STATE_KEY,
        "state_store": MemoryStore(),
        "use_par": False,
        **options,
    }
    return OAuthClient(**settings)


def _note_response(notes: Notes, client: OAuthClient, result: LoginResult) -> None:
    """Remember code, state, inner state, PKCE verifier and nonce before the callback."""
    notes.secret("code", result.code)
    notes.secret("state", result.state)
    if result.state:
        payload = open_state(client, result.state)
        notes.secret("inner_state", payload.state)
        values = peek_one_time(client, payload)
        if values is not None:
            notes.secret("pkce_verifier", values.code_verifier)
            notes.secret("nonce", values.nonce)


def _note_token(notes: Notes, token: Any) -> None:
    notes.secret("access_token", token.access_token)
    notes.secret("refresh_token", token.refresh_token)
    notes.secret("id_token", token.id_token)


def _start(notes: Notes, client: OAuthClient, browser: str) -> LoginResult:
    request = prepare_call(client, browser)
    notes.logins.append(request.trace_id)
    notes.secret("browser_token", browser)
    notes.secret("client_secret", client.client_secret)
    result = login(request.url)
    _note_response(notes, client, result)
    return result


def _core_flows(rec: _Recorder, idp: TestProvider) -> None:
    with rec.flow("core.query") as notes:
        provider = _provider(idp)
        try:
            client = _client(provider)
            browser = secrets.token_urlsafe(32)
            result = _start(notes, client, browser)
            assert result.response_mode == "query"
            token = handle_callback(client, result.params, browser)
            _note_token(notes, token)
            assert get_userinfo(client, token)["sub"] == "alice"
            fresh = refresh_token(client, token)
            _note_token(notes, fresh)
            assert introspect_token(client, fresh, "access").active
            assert introspect_token(client, fresh, "refresh").active
            assert revoke_token(client, fresh, "refresh").revoked
            assert revoke_token(client, fresh, "access").revoked
        finally:
            provider.close()

    with rec.flow("core.par") as notes:
        provider = _provider(idp)
        try:
            client = _client(provider, "par-required", use_par=True)
            browser = secrets.token_urlsafe(32)
            token = handle_callback(client, _start(notes, client, browser).params, browser)
            _note_token(notes, token)
        finally:
            provider.close()

    with rec.flow("core.form_post") as notes:
        provider = _provider(idp)
        try:
            client = _client(provider, response_mode="form_post")
            browser = secrets.token_urlsafe(32)
            result = _start(notes, client, browser)
            assert result.response_mode == "form_post"
            token, _ = complete_callback(client, result.fields, browser)
            _note_token(notes, token)
        finally:
            provider.close()

    with rec.flow("core.failures") as notes:
        provider = _provider(idp)
        try:
            client = _client(provider)
            # A tampered ID token: the signature check fails inside the callback.
            idp.tamper_next_id_token("signature")
            browser = secrets.token_urlsafe(32)
            with pytest.raises(IDTokenError):
                handle_callback(client, _start(notes, client, browser).params, browser)
            # The token endpoint answers HTTP 500.
            idp.fail_token_endpoint(times=1)
            browser = secrets.token_urlsafe(32)
            with pytest.raises(TokenEndpointError):
                handle_callback(client, _start(notes, client, browser).params, browser)
            # A tampered state never opens: the callback is a root span.
            browser = secrets.token_urlsafe(32)
            params = dict(_start(notes, client, browser).params)
            params["state"] = params["state"][:-6] + ("A" if params["state"][-6] != "A" else "B")
            params["state"] += "x" * 5
            with pytest.raises(StateError):
                handle_callback(client, params, browser)
            # A replayed callback: the one-time values are gone.
            browser = secrets.token_urlsafe(32)
            result = _start(notes, client, browser)
            _note_token(notes, handle_callback(client, result.params, browser))
            with pytest.raises(StateError):
                handle_callback(client, result.params, browser)
            # RFC 9207: iss missing, then from another issuer.
            browser = secrets.token_urlsafe(32)
            result = _start(notes, client, browser)
            without_iss = {k: v for k, v in result.params.items() if k != "iss"}
            with pytest.raises(CallbackIssuerError):
                handle_callback(client, without_iss, browser)
            with pytest.raises(CallbackIssuerError):
                handle_callback(client, {**result.params, "iss": "https://evil.example"}, browser)
            # A malformed callback (no state at all).
            with pytest.raises(CallbackQueryError):
                handle_callback(client, {"code": "x"}, browser)
            # The provider answers the login with an error.
            browser = secrets.token_urlsafe(32)
            request = prepare_call(client, browser)
            notes.logins.append(request.trace_id)
            sealed = parse_qs(urlsplit(request.url).query)["state"][0]
            notes.secret("state", sealed)
            with pytest.raises(Exception) as refused:
                handle_callback(
                    client,
                    {"state": sealed, "error": "access_denied", "iss": provider.issuer or ""},
                    browser,
                )
            assert refused.value.__class__.__name__ == "AuthorizationError"
            # The same error answer again: its login is spent.
            with pytest.raises(StateError):
                handle_callback(
                    client,
                    {"state": sealed, "error": "access_denied", "iss": provider.issuer or ""},
                    browser,
                )
            # Userinfo answers HTTP 503.
            browser = secrets.token_urlsafe(32)
            result = _start(notes, client, browser)
            token = handle_callback(client, result.params, browser)
            _note_token(notes, token)
            idp.fail_userinfo(times=1)
            with pytest.raises(HTTPError):
                get_userinfo(client, token)
            # The revocation endpoint cannot be reached.
            unreachable = dataclasses.replace(
                provider, revocation_endpoint="http://127.0.0.1:9/revoke"
            )
            moved = dataclasses.replace(client, provider=unreachable)
            assert revoke_token(moved, token, "access").status == "transport_error"
            # A worker task's answer that belongs to another task.
            _refuse_a_swapped_outcome(client)
        finally:
            idp.reset_faults()
            provider.close()


class _HandOver:
    """A worker backend that answers every task with :attr:`answer` (no worker runs)."""

    answer = ""

    def submit(self, operation: str, sealed: str, client_path: str, worker_init: str | None):
        return self

    def result(self, timeout: float | None = None) -> str:
        return self.answer

    def cancel(self) -> bool:
        return False

    def shutdown(self) -> None:
        pass


def _refuse_a_swapped_outcome(client: OAuthClient) -> None:
    """The sealed outcome of another task, given to the waiter of this one."""
    backend = _HandOver()
    dispatcher = Dispatcher(backend, "myapp.auth:client")
    probe = {"token": {"access_token": "not-a-token"}, "which": "access"}
    waited = dispatcher.submit(client, "introspect", probe)
    other = TaskBinding.new("introspect", "myapp.auth:client", None, now=time.time())
    backend.answer = outcome_sealer(client).seal({"task": other.echo(), "result": {}})
    with pytest.raises(TaskBindingError):
        dispatcher.outcome(client, "introspect", waited)


def _module_login(notes: Notes, running: RunningApp, http: httpx.Client) -> httpx.Response:
    notes.secret("client_secret", running.client.client_secret)
    first = http.get("/oauth/login?next=/")
    assert first.status_code == 302, first.text
    notes.secret("binding_cookie", binding_cookie(http.cookies))
    result = login(first.headers["location"], http_client=http)
    _note_response(notes, running.module.client, result)
    return result.deliver(http)


def _note_session(notes: Notes, running: RunningApp, http: httpx.Client) -> Any:
    sid = session_cookie(http.cookies)
    notes.secret("session_cookie", sid)
    record = running.module.sessions.load(sid)
    assert record is not None
    _note_token(notes, record.token)
    notes.secret("csrf_token", running.module.csrf_token(record))
    return record


def _logins_of(notes: Notes) -> None:
    """Correlation ids of the module's logins, read from the flow's login.request spans."""
    for found in otel._spans.get_finished_spans():
        if found.name == spans.LOGIN_REQUEST:
            notes.logins.append(str((found.attributes or {})[attr.TRACE_ID]))


def _module_flows(rec: _Recorder, idp: TestProvider) -> None:
    with rec.flow("module.login_logout") as notes:
        with serve_app(idp) as running, running.http() as http:
            # A malformed binding cookie is replaced (audit_invalid_browser_token).
            http.cookies.set(
                running.module.cookies.binding_name, "tooshort", domain="127.0.0.1", path="/"
            )
            landed = _module_login(notes, running, http)
            assert landed.status_code == 303, landed.text
            _note_session(notes, running, http)
            status = http.get("/oauth/status").json()
            assert status["authenticated"] is True
            done = http.post("/oauth/logout", data={"csrf_token": status["csrf_token"]})
            assert done.status_code in (200, 303), done.text
            assert http.get("/oauth/status").json()["authenticated"] is False
            # The provider's return to the signed-out page, with the logout's state and without.
            found = re.search(r'name="state" value="([^"]+)"', done.text)
            assert found is not None, done.text
            notes.secret("logout_state", found.group(1))
            returned = http.get("/oauth/signed-out", params={"state": found.group(1)})
            assert returned.status_code == 200
            assert http.get("/oauth/signed-out").status_code == 200
        _logins_of(notes)

    with rec.flow("module.logout_csrf") as notes:
        with serve_app(idp) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            refused = http.post("/oauth/logout", data={"csrf_token": "wrong"})
            assert refused.status_code == 403
        _logins_of(notes)

    with rec.flow("module.foreign_session") as notes:
        # A's session id presented to B, which shares A's store: sealed for
        # client A, B refuses it (audit_session_rejected).
        shared = {"state_store": MemoryStore()}
        with (
            serve_app(idp, client_options=shared) as running,
            serve_app(idp, client_options=shared) as other,
            running.http() as http,
            other.http() as elsewhere,
        ):
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            elsewhere.cookies.set(
                other.module.cookies.session_name, session_cookie(http.cookies) or ""
            )
            assert elsewhere.get("/oauth/status").json()["authenticated"] is False
        _logins_of(notes)

    with rec.flow("module.form_post") as notes:
        with serve_app(idp, response_mode="form_post") as running, running.http() as http:
            notes.secret("client_secret", running.client.client_secret)
            first = http.get("/oauth/login?next=/x")
            notes.secret("binding_cookie", binding_cookie(http.cookies))
            result = login(first.headers["location"], http_client=http)
            assert result.response_mode == "form_post"
            _note_response(notes, running.module.client, result)
            bridged = result.deliver(http)
            assert bridged.status_code == 303, bridged.text
            handle_url = bridged.headers["location"]
            notes.secret("form_post_handle", handle_url.split("fp=", 1)[1])
            landed = http.get(handle_url)
            assert landed.status_code == 303 and landed.headers["location"] == "/x"
            _note_session(notes, running, http)
            assert http.get(handle_url).status_code == 400  # single-use handle
            wrong = http.post("/oauth/callback", json={"state": "x"})
            assert wrong.status_code == 415
        _logins_of(notes)

    with rec.flow("module.anonymous_bounds") as notes:
        options = {"login_burst": 3, "login_rate_per_second": 0.01}
        options["max_pending_logins_per_browser"] = 1
        with serve_app(idp, **options) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            with running.http() as stranger:
                assert stranger.get("/oauth/login").status_code == 302
                notes.secret("binding_cookie", binding_cookie(stranger.cookies))
                # A second start of this browser drops its first (audit_pending_login_evicted).
                assert stranger.get("/oauth/login").status_code == 302
                # A fourth start is over the rate (audit_login_rate_limited).
                assert stranger.get("/oauth/login").status_code == 429
                # No such route; a callback POST in query mode (audit_route_refused).
                assert stranger.get("/oauth/anything").status_code == 404
                assert stranger.post("/oauth/callback", data={"state": "x"}).status_code == 405
        _logins_of(notes)

    with rec.flow("module.sweep") as notes:
        options = {"idle_timeout": 1, "revoke_on_session_end": True, "reauth_after_seconds": 3600}
        with serve_app(idp, **options) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            time.sleep(1.2)
            assert running.module.sweep() == 1
        _logins_of(notes)

    with rec.flow("module.refresh") as notes:
        # A two-second token refreshed a second before it expires.
        options = {"access_token_ttl": 2, "refresh_lead_seconds": 1}
        with serve_app(idp, **options) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            time.sleep(1.2)
            assert http.get("/oauth/status").json()["authenticated"] is True
            _note_session(notes, running, http)
        _logins_of(notes)

    with rec.flow("module.refresh_failure") as notes:
        options = {"access_token_ttl": 2, "refresh_lead_seconds": 1, "indefinite_session": True}
        with serve_app(idp, **options) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            idp.fail_token_endpoint(times=1)
            time.sleep(1.2)
            try:
                assert http.get("/oauth/status").json()["authenticated"] is True
            finally:
                idp.reset_faults()
        _logins_of(notes)

    with rec.flow("module.stale_refresh") as notes:
        # A new login replaces the session while its refresh waits on the token
        # endpoint: the late tokens are revoked (in the background), not installed.
        options = {"access_token_ttl": 2, "refresh_lead_seconds": 1}
        with serve_app(idp, **options) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            cookies = dict(http.cookies)
            time.sleep(1.2)
            idp.delay_token_endpoint(ms=3000)
            answers: dict[str, Any] = {}

            def refreshing_request() -> None:
                with running.http() as other:
                    other.cookies.update(cookies)
                    answers["status"] = other.get("/oauth/status").json()

            thread = threading.Thread(target=refreshing_request)
            thread.start()
            try:
                time.sleep(0.3)
                again = http.get("/oauth/login?next=/&reauth=1")
                result = login(again.headers["location"], http_client=http)
                _note_response(notes, running.module.client, result)
                assert result.deliver(http).status_code == 303
                _note_session(notes, running, http)
            finally:
                thread.join(timeout=15)
                idp.reset_faults()
            assert answers["status"]["authenticated"] is False
            _wait_for(lambda: _count(notes.audit, "audit_token_revocation") >= 2)
            _wait_for(lambda: len(_finished(spans.SESSION_END_REVOKE)) >= 1)
            stale = [e for e in notes.audit if e["type"] == "audit_stale_result_revoked"]
            assert [(e["operation"], e["reason"]) for e in stale] == [("refresh", "session_ended")]
        _logins_of(notes)

    with rec.flow("module.backchannel_logout") as notes:
        # A defective logout token is refused; then the provider ends its
        # session and sends its own logout token: the session ends, revoked.
        options = {"backchannel_logout": True, "revoke_on_session_end": True}
        with serve_app(idp, **options) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            record = _note_session(notes, running, http)
            notes.secret("provider_sid", record.op_sid)
            defective = idp.logout_token(running.registered, sid=record.op_sid, defect="wrong_aud")
            notes.secret("logout_token", defective)
            refused = httpx.post(
                running.origin + "/oauth/backchannel-logout", data={"logout_token": defective}
            )
            assert refused.status_code == 400
            logout(idp.endpoint("end_session"), http_client=http)
            assert http.get("/oauth/status").json()["authenticated"] is False
        _logins_of(notes)

    with rec.flow("module.frontchannel_logout") as notes:
        with serve_app(idp, backchannel_logout=True) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            record = _note_session(notes, running, http)
            notes.secret("provider_sid", record.op_sid)
            route = running.origin + "/oauth/frontchannel-logout"
            issuer = running.client.provider.issuer
            wrong = httpx.get(route, params={"iss": issuer + "/other", "sid": record.op_sid})
            assert wrong.status_code == 400
            done = httpx.get(route, params={"iss": issuer, "sid": record.op_sid})
            assert done.status_code == 200
            assert http.get("/oauth/status").json()["authenticated"] is False
        _logins_of(notes)

    with rec.flow("module.login_failure") as notes:
        with serve_app(idp) as running, running.http() as http:
            notes.secret("client_secret", running.client.client_secret)
            first = http.get("/oauth/login?next=/")
            notes.secret("binding_cookie", binding_cookie(http.cookies))
            result = login(first.headers["location"], http_client=http)
            _note_response(notes, running.module.client, result)
            http.cookies.delete(running.module.cookies.binding_name)
            failed = result.deliver(http)
            assert failed.status_code == 400
        _logins_of(notes)


def _count(events: list[dict[str, Any]], event_type: str) -> int:
    return sum(1 for e in events if e["type"] == event_type)


def _finished(name: str) -> list[ReadableSpan]:
    return [s for s in otel._spans.get_finished_spans() if s.name == name]


def _wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "background work did not finish"
        time.sleep(0.05)


_RUNS: dict[int, CatalogRun] = {}


def catalog_run(idp: TestProvider) -> CatalogRun:
    """Run every flow once per process (shared with the drift test)."""
    key = id(idp)
    if key not in _RUNS:
        run = CatalogRun()
        rec = _Recorder(run)
        idp.reset_faults()
        _core_flows(rec, idp)
        _module_flows(rec, idp)
        _collect_metrics(run)
        _RUNS[key] = run
    return _RUNS[key]


@pytest.fixture(scope="module")
def run(idp_server: TestProvider) -> CatalogRun:
    return catalog_run(idp_server)


# -- helpers -----------------------------------------------------------------------


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _vignette_keys() -> set[str]:
    return set(re.findall(r"`([a-z_][a-z0-9_.]*)`", VIGNETTE.read_text(encoding="utf-8")))


def _normal(key: str) -> str:
    return key.lower().replace("_", ".").replace("-", ".")


# -- coverage and scope ------------------------------------------------------------


def test_every_catalogued_span_is_emitted(run):
    emitted = {s.name for s in run.spans()}
    assert CATALOG - WORKER_SPANS - emitted == set()
    assert emitted <= CATALOG


def test_everything_is_under_the_package_scope(run):
    from dash_oauth_otel import __version__

    for found in run.spans():
        assert found.instrumentation_scope is not None
        assert found.instrumentation_scope.name == "dash_oauth_otel"
        assert found.instrumentation_scope.version == __version__
    assert set(run.metrics) >= {LOGIN_OUTCOMES, "http.client.request.duration"}


# -- parenting ---------------------------------------------------------------------


def test_every_span_has_its_catalogued_parent(run):
    wrong = []
    for flow in run.flows.values():
        for found in flow.spans:
            assert found.name in PARENTS, f"no parent rule for {found.name}: add one"
            parent = flow.parent_of(found)
            name = parent.name if parent is not None else None
            if name not in PARENTS[found.name]:
                wrong.append((flow.name, found.name, name))
    assert wrong == []


def test_parents_by_phase(run):
    expected = {
        (spans.CALLBACK_VALIDATE, "callback.nonce_validation"): spans.CALLBACK,
        (spans.CALLBACK_VALIDATE, "refresh.id_token_validation"): spans.TOKEN_VERIFY,
        (spans.TOKEN_EXCHANGE_HTTP, "token.exchange"): spans.TOKEN_EXCHANGE,
        (spans.TOKEN_EXCHANGE_HTTP, "refresh"): spans.REFRESH,
        (spans.TOKEN_VERIFY, "callback.verify"): spans.CALLBACK,
        (spans.TOKEN_VERIFY, "refresh.verify"): spans.REFRESH,
    }
    seen = set()
    for flow in run.flows.values():
        for found in flow.spans:
            phase = _attrs(found)[attr.OAUTH_PHASE]
            parent = flow.parent_of(found)
            if found.name == spans.CALLBACK_VALIDATE and phase.startswith("callback."):
                # Every stage of the callback validation, the nonce one included.
                assert parent is not None and parent.name == spans.CALLBACK, phase
            want = expected.get((found.name, phase))
            if want is not None:
                seen.add((found.name, phase))
                assert parent is not None and parent.name == want, (found.name, phase)
    assert seen == set(expected)


def test_callback_is_a_child_of_its_own_login(run):
    checked = 0
    for flow in run.flows.values():
        for found in flow.named(spans.CALLBACK):
            parent = flow.parent_of(found)
            if parent is None:
                continue
            checked += 1
            assert parent.name == spans.LOGIN_REQUEST
            assert _attrs(parent)[attr.TRACE_ID] == _attrs(found)[attr.TRACE_ID]
            assert parent.context.trace_id == found.context.trace_id
    assert checked >= 10


def test_callback_with_a_tampered_state_is_a_root(run):
    flow = run.flows["core.failures"]
    tampered = [
        s
        for s in flow.named(spans.CALLBACK)
        if any(
            (e.attributes or {}).get("dash_oauth_otel.error.reason") == "gcm_auth_failed"
            for e in s.events
        )
    ]
    assert len(tampered) == 1
    assert tampered[0].parent is None
    assert _attrs(tampered[0])[attr.ERROR_TYPE] == "StateError"


def test_module_request_spans_are_roots(run):
    for name in (spans.MODULE_INIT, spans.FORM_POST, spans.FORM_POST_BRIDGE, spans.LOGOUT):
        found = run.spans(name)
        assert found, name
        assert all(s.parent is None for s in found), name


def test_session_end_revoke_parents(run):
    # An ordinary logout revokes under its logout span (the catalog keeps
    # session.end.revoke for a session that ends otherwise).
    logout = run.flows["module.login_logout"]
    assert logout.named(spans.SESSION_END_REVOKE) == []
    (on_logout,) = logout.named(spans.LOGOUT)
    sweep = run.flows["module.sweep"]
    (on_sweep,) = sweep.named(spans.SESSION_END_REVOKE)
    assert on_sweep.parent is None
    for flow, end in ((logout, on_logout), (sweep, on_sweep)):
        revokes = [s for s in flow.named(spans.TOKEN_REVOKE) if flow.parent_of(s) is end]
        assert [_attrs(s)[attr.OAUTH_TOKEN_WHICH] for s in revokes] == ["refresh", "access"]
        for revoke in revokes:
            (http,) = [
                s
                for s in flow.named(spans.TOKEN_REVOKE_HTTP)
                if s.parent and s.parent.span_id == revoke.context.span_id
            ]
            assert http.kind is SpanKind.CLIENT


def test_par_nests_under_the_login_request(run):
    flow = run.flows["core.par"]
    (request,) = flow.named(spans.LOGIN_REQUEST)
    (par,) = flow.named(spans.LOGIN_PAR)
    (http,) = flow.named(spans.LOGIN_PAR_HTTP)
    assert flow.parent_of(par) is request
    assert flow.parent_of(http) is par
    assert _attrs(request)[attr.OAUTH_PAR_USED] is True
    assert _attrs(http)[attr.HTTP_RESPONSE_STATUS_CODE] == 201


# -- one login, one trace ------------------------------------------------------------


SESSION_ROOTS = frozenset(
    {
        spans.REFRESH,
        spans.LOGOUT,
        spans.SESSION_END_REVOKE,
        spans.BACKCHANNEL_LOGOUT,
        spans.FRONTCHANNEL_LOGOUT,
    }
)


def _root_of(flow: Flow, span: ReadableSpan) -> ReadableSpan:
    parent = flow.parent_of(span)
    return span if parent is None else _root_of(flow, parent)


def test_one_login_is_one_trace(run):
    separate_roots = {spans.FORM_POST, spans.FORM_POST_BRIDGE}
    complete = 0
    for flow in run.flows.values():
        assert flow.logins, flow.name
        for correlation in flow.logins:
            (request,) = [
                s
                for s in flow.named(spans.LOGIN_REQUEST)
                if _attrs(s)[attr.TRACE_ID] == correlation
            ]
            trace_id = request.context.trace_id
            # The session's later operations (refresh, logout, session end) carry
            # the login's correlation id in traces of their own.
            members = [
                s
                for s in flow.spans
                if _attrs(s).get(attr.TRACE_ID) == correlation
                and s.name not in separate_roots
                and _root_of(flow, s).name not in SESSION_ROOTS
            ]
            outside = [s.name for s in members if s.context.trace_id != trace_id]
            assert outside == [], (flow.name, outside)
            in_trace = [s for s in flow.spans if s.context.trace_id == trace_id]
            assert all(_attrs(s).get(attr.TRACE_ID) == correlation for s in in_trace)
            names = {s.name for s in in_trace}
            if any(
                e["type"] == "audit_login_success" and e["trace_id"] == correlation
                for e in flow.audit
            ):
                complete += 1
                assert {
                    spans.CALLBACK,
                    spans.CALLBACK_VALIDATE,
                    spans.TOKEN_EXCHANGE,
                    spans.TOKEN_EXCHANGE_HTTP,
                    spans.TOKEN_VERIFY,
                    spans.USERINFO,
                    spans.USERINFO_HTTP,
                } <= names, (flow.name, names)
            # OTel log records emitted inside the login's spans sit in its trace.
            for record in flow.logs:
                attributes = dict(record.attributes or {})
                if attributes.get(attr.TRACE_ID) == correlation and record.trace_id:
                    around = flow.by_id().get(record.span_id)
                    if around is not None and _root_of(flow, around).name in SESSION_ROOTS:
                        continue  # a later operation of the session, in its own trace
                    assert record.trace_id == trace_id, record.event_name
    assert complete >= 9


SESSION_FLOWS = (
    "module.login_logout",
    "module.refresh",
    "module.refresh_failure",
    "module.sweep",
    "module.backchannel_logout",
    "module.frontchannel_logout",
)
SESSION_EVENTS = frozenset(
    {
        "audit_session_started",
        "audit_token_refresh",
        "audit_refresh_failed_but_kept_session",
        "audit_logout",
        "audit_session_ended",
        "audit_token_revocation",
    }
)
SESSION_SPANS = frozenset(
    {spans.REFRESH, spans.LOGOUT, spans.SESSION_END_REVOKE, spans.TOKEN_REVOKE}
)


def test_a_session_keeps_the_correlation_id_of_its_login(run):
    # One login, one id: the session's start, refresh, logout and end carry the
    # correlation id minted at login.request.
    for name in SESSION_FLOWS:
        flow = run.flows[name]
        (correlation,) = flow.logins
        events = [e for e in flow.audit if e["type"] in SESSION_EVENTS]
        assert {e["type"] for e in events} >= {"audit_session_started"}, name
        assert {(e["type"], e["trace_id"]) for e in events} == {
            (e["type"], correlation) for e in events
        }, name
        later = [s for s in flow.spans if s.name in SESSION_SPANS]
        assert {(s.name, _attrs(s).get(attr.TRACE_ID)) for s in later} == {
            (s.name, correlation) for s in later
        }, name
    seen = {e["type"] for n in SESSION_FLOWS for e in run.flows[n].audit}
    assert seen >= SESSION_EVENTS
    assert {s.name for n in SESSION_FLOWS for s in run.flows[n].spans} >= SESSION_SPANS


def test_form_post_span_carries_the_login_correlation_id(run):
    # The catalog: once the state of the form_post POST has been opened, the span
    # carries the login's correlation id, which joins it to the login's trace.
    flow = run.flows["module.form_post"]
    (correlation,) = flow.logins
    accepted = min(flow.named(spans.FORM_POST), key=lambda s: s.start_time or 0)
    assert _attrs(accepted).get(attr.TRACE_ID) == correlation


def test_refused_form_post_span_is_an_error(run):
    # The flow posts a JSON body to the callback route: refused with HTTP 415 and an
    # audit_callback_validation_failed event, so its span must not report success.
    flow = run.flows["module.form_post"]
    refused = max(flow.named(spans.FORM_POST), key=lambda s: s.start_time or 0)
    assert refused.status.status_code is StatusCode.ERROR
    assert _attrs(refused).get(attr.ERROR_TYPE) == "CallbackQueryError"


def test_refused_logout_span_is_an_error(run):
    # A logout without a valid CSRF token is refused (HTTP 403, an ``error`` event
    # with reason csrf_rejected): its span must not report success.
    flow = run.flows["module.logout_csrf"]
    assert [e["reason"] for e in flow.audit if e["type"] == "error"] == ["csrf_rejected"]
    (refused,) = flow.named(spans.LOGOUT)
    assert refused.status.status_code is StatusCode.ERROR
    assert _attrs(refused).get(attr.ERROR_TYPE)


# -- attributes ----------------------------------------------------------------------


def test_module_init_records_the_session_options(run):
    flow = run.flows["module.sweep"]
    (init,) = flow.named(spans.MODULE_INIT)
    attributes = _attrs(init)
    assert attributes["oauth.revoke_on_session_end"] is True
    assert attributes[attr.DASH_MODULE_ID] == "dash_oauth_otel"
    # Configured with reauth_after_seconds=3600: the catalog records it.
    assert attributes.get("oauth.reauth_after_seconds") == 3600


SEED_ATTRIBUTES: dict[str, set[str]] = {
    spans.MODULE_INIT: {"oauth.browser_cookie_path_root", "oauth.refresh_proactively"},
    spans.LOGIN_PAR: {"oauth.extra_auth_params_count", "oauth.extra_token_headers_count"},
    spans.CALLBACK: {
        "oauth.userinfo.id_token_match_required",
        "oauth.introspect",
        "oauth.introspect_elements_count",
    },
    spans.TOKEN_EXCHANGE: {
        "oauth.extra_token_headers_count",
        "oauth.scope.present",
        "oauth.scopes.granted",
        "oauth.expires_in_synthesized",
    },
    spans.REFRESH: {
        "oauth.extra_token_headers_count",
        "oauth.scope.present",
        "oauth.scopes.granted",
        "oauth.expires_in_synthesized",
    },
    spans.TOKEN_VERIFY: {"oauth.nonce.required"},
    spans.TOKEN_REVOKE: {"oauth.extra_token_params_count", "oauth.extra_token_headers_count"},
    spans.TOKEN_INTROSPECT: {
        "oauth.extra_token_params_count",
        "oauth.extra_token_headers_count",
    },
}


def test_seed_catalog_attributes_of_built_features_are_emitted(run):
    missing = {
        name: {k for k in keys if not any(k in _attrs(s) for s in run.spans(name))}
        for name, keys in SEED_ATTRIBUTES.items()
    }
    assert {n: k for n, k in missing.items() if k} == {}


def test_token_response_attributes_describe_the_grant(run):
    flow = run.flows["core.query"]
    (exchange,) = flow.named(spans.TOKEN_EXCHANGE)
    attributes = _attrs(exchange)
    assert attributes["oauth.expires_in_synthesized"] is False
    assert set(str(attributes["oauth.scopes.granted"]).split()) >= {"openid", "profile"}
    (verify,) = [
        s
        for s in flow.named(spans.TOKEN_VERIFY)
        if _attrs(s)[attr.OAUTH_PHASE] == "callback.verify"
    ]
    assert _attrs(verify)["oauth.nonce.required"] is True
    (callback,) = flow.named(spans.CALLBACK)
    assert _attrs(callback)["oauth.userinfo.id_token_match_required"] is True
    assert _attrs(callback)["oauth.introspect"] is False


def test_session_end_revoke_names_the_ended_session(run):
    for name in ("module.sweep", "module.backchannel_logout"):
        flow = run.flows[name]
        (ended,) = [e for e in flow.audit if e["type"] == "audit_session_ended"]
        (end,) = flow.named(spans.SESSION_END_REVOKE)
        assert _attrs(end).get(attr.DASH_SESSION_ID_DIGEST) == ended["session_id_digest"], name


def test_attribute_keys_are_catalogued(run):
    known = ATTRIBUTE_KEYS | _vignette_keys()
    unknown = {k for s in run.spans() for k in _attrs(s)} - known
    assert unknown == set()


def test_no_key_has_a_variant_spelling(run):
    by_normal: dict[str, set[str]] = {}
    for found in run.spans():
        keys = list(_attrs(found))
        normal = [_normal(k) for k in keys]
        assert len(set(normal)) == len(normal), (found.name, keys)
        for key in keys:
            by_normal.setdefault(_normal(key), set()).add(key)
    for record in run.logs():
        for key in dict(record.attributes or {}):
            by_normal.setdefault(_normal(key), set()).add(key)
    assert {n: k for n, k in by_normal.items() if len(k) > 1} == {}


def test_http_client_spans_use_the_semantic_conventions(run):
    for name in HTTP_SPANS - WORKER_SPANS:
        found = run.spans(name)
        assert found, name
        for http in found:
            attributes = _attrs(http)
            assert http.kind is SpanKind.CLIENT
            assert attributes[attr.HTTP_REQUEST_METHOD] in ("GET", "POST")
            assert attributes[attr.SERVER_ADDRESS] == "127.0.0.1"
            assert isinstance(attributes[attr.SERVER_PORT], int)
            url = attributes[attr.URL_FULL]
            assert "?" not in url and "#" not in url and "@" not in url
            status = attributes.get(attr.HTTP_RESPONSE_STATUS_CODE)
            assert status is None or isinstance(status, int)


# -- status and errors ----------------------------------------------------------------


def test_errors_follow_the_conventions(run):
    failed = [s for s in run.spans() if s.status.status_code is StatusCode.ERROR]
    assert {s.name for s in failed} >= {
        spans.CALLBACK,
        spans.CALLBACK_VALIDATE,
        spans.TOKEN_EXCHANGE,
        spans.TOKEN_EXCHANGE_HTTP,
        spans.TOKEN_VERIFY,
        spans.USERINFO,
        spans.USERINFO_HTTP,
        spans.TOKEN_REVOKE_HTTP,
        spans.REFRESH,
    }
    for found in failed:
        attributes = _attrs(found)
        error_type = attributes.get(attr.ERROR_TYPE)
        assert error_type, found.name
        status = attributes.get(attr.HTTP_RESPONSE_STATUS_CODE)
        # Error status plus one exception event (type, message, reason), on every
        # span, the HTTP client spans answered with 400 or more included.
        (event,) = found.events
        assert event.name == "exception"
        details = dict(event.attributes or {})
        assert set(details) == EXCEPTION_EVENT_KEYS, found.name
        assert details["exception.type"] == error_type
        if found.name in HTTP_SPANS and status is not None and status >= 400:
            assert error_type == str(status)
            assert found.status.description == f"HTTP {status}"
            assert details["dash_oauth_otel.error.reason"] == f"http_{status}"
    for found in run.spans():
        if found.status.status_code is StatusCode.OK:
            assert attr.ERROR_TYPE not in _attrs(found), found.name
            assert found.events == (), found.name
        else:
            assert found.status.status_code is StatusCode.ERROR, found.name


def test_a_failed_refresh_has_its_own_error_code(run):
    flow = run.flows["module.refresh_failure"]
    failed = [s for s in flow.named(spans.REFRESH) if s.status.status_code is StatusCode.ERROR]
    assert failed
    for found in failed:
        assert found.status.description == "token_refresh_error"
        assert _attrs(found)[attr.ERROR_TYPE] == "TokenEndpointError"


def test_module_spans_say_whether_the_session_is_async(run):
    for name in ("module.refresh", "module.login_logout"):
        flow = run.flows[name]
        served = [s for s in flow.spans if s.name in (spans.REFRESH, spans.CALLBACK, spans.LOGOUT)]
        assert served, name
        assert {_attrs(s).get(attr.DASH_SESSION_IS_ASYNC) for s in served} == {False}, name
        started = [e for e in flow.audit if e["type"] == "audit_session_started"]
        assert [e["session.is_async"] for e in started] == [False]


def test_an_error_page_is_reported_once_as_an_error_event(run):
    flow = run.flows["module.login_failure"]
    (failed,) = [e for e in flow.audit if e["type"] == "audit_login_failed"]
    (error,) = [e for e in flow.audit if e["type"] == "error"]
    assert error["phase"] == failed["phase"] == "callback.browser_token_validation"
    assert error["error_class"] == failed["error_class"]
    assert error["reason"] and error["trace_id"] == failed["trace_id"]


def test_error_answers_of_the_provider_spend_their_login(run):
    flow = run.flows["core.failures"]
    (consumed,) = [e for e in flow.audit if e["type"] == "audit_error_state_consumed"]
    (refused,) = [e for e in flow.audit if e["type"] == "audit_error_state_consumption_failed"]
    assert consumed["state_digest"] == refused["state_digest"]
    (provider_error,) = [
        e for e in flow.audit if e["type"] == "error" and e["phase"] == "callback.provider_error"
    ]
    assert provider_error["error_class"] == "AuthorizationError"


def test_authenticated_changes_follow_the_session(run):
    flow = run.flows["module.login_logout"]
    changes = [e for e in flow.audit if e["type"] == "audit_authenticated_changed"]
    assert [(e["previous_authenticated"], e["authenticated"], e["reason"]) for e in changes] == [
        (False, True, "login"),
        (True, False, "logout"),
    ]
    (started,) = [e for e in flow.audit if e["type"] == "audit_session_started"]
    assert {e["session_id_digest"] for e in changes} == {started["session_id_digest"]}


# -- secrets ---------------------------------------------------------------------------


def test_no_secret_is_exported(run):
    metric_text = repr([m.points for m in run.metrics.values()])
    for flow in run.flows.values():
        kinds = {label.split("#")[0] for label in flow.secrets}
        # The scan is only as good as what the flow collected.
        expected = {"code", "state", "inner_state", "pkce_verifier", "nonce", "client_secret"}
        if flow.name.startswith("core."):
            expected |= {"browser_token", "access_token", "refresh_token", "id_token"}
        else:
            expected |= {"binding_cookie"}
        if flow.name.startswith("module.") and flow.name != "module.login_failure":
            expected |= {"session_cookie", "csrf_token", "access_token", "refresh_token"}
        assert expected <= kinds, (flow.name, expected - kinds)
        for label, value in flow.secrets.items():
            assert value not in flow.text, f"{flow.name}: {label} exported"
            assert value not in metric_text, f"{flow.name}: {label} in a metric"
        assert not JWT.search(flow.text), flow.name


def test_audit_log_lines_are_the_events(run):
    for flow in run.flows.values():
        assert len(flow.log_lines) == len(flow.audit), flow.name
        for event, (_, line) in zip(flow.audit, flow.log_lines, strict=True):
            assert json.loads(line) == json.loads(json.dumps(event, default=str)), event["type"]


# -- switches ----------------------------------------------------------------------------


@pytest.fixture
def environment_switches(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("TRACING", "LOGS", "METRICS"):
        monkeypatch.delenv(f"DASH_OAUTH_OTEL_{name}", raising=False)
    switches.configure()
    yield monkeypatch
    switches.configure()


def _login_over_http(idp: TestProvider) -> None:
    with serve_app(idp) as running, running.http() as http:
        first = http.get("/oauth/login?next=/")
        landed = login(first.headers["location"], http_client=http).deliver(http)
        assert landed.status_code == 303, landed.text
        assert http.get("/oauth/status").json()["authenticated"] is True


def _login_outcomes(telemetry: Any) -> float:
    return sum(p.value for p in telemetry.metric_points(LOGIN_OUTCOMES))


def test_tracing_switched_off_emits_no_span(idp, telemetry, environment_switches):
    environment_switches.setenv("DASH_OAUTH_OTEL_TRACING", "0")
    _login_over_http(idp)
    assert telemetry.spans() == []
    assert "audit_login_success" in telemetry.event_types()
    assert telemetry.log_records()


def test_tracing_switched_off_by_configure(idp, telemetry, environment_switches):
    switches.configure(tracing=False)
    provider = _provider(idp)
    try:
        client = _client(provider)
        browser = secrets.token_urlsafe(32)
        request = prepare_call(client, browser)
        token = handle_callback(client, login(request.url).params, browser)
        refresh_token(client, token)
        revoke_token(client, token, "refresh")
    finally:
        switches.configure()
        provider.close()
    assert telemetry.spans() == []
    assert "audit_token_revocation" in telemetry.event_types()


def test_logs_switched_off_emit_no_log_record(idp, telemetry, environment_switches):
    environment_switches.setenv("DASH_OAUTH_OTEL_LOGS", "off")
    _login_over_http(idp)
    assert telemetry.log_records() == []
    assert "audit_login_success" in telemetry.event_types()
    assert telemetry.spans(spans.CALLBACK)


def test_metrics_switched_off_record_nothing(idp, telemetry, environment_switches):
    before = _login_outcomes(telemetry)
    environment_switches.setenv("DASH_OAUTH_OTEL_METRICS", "false")
    _login_over_http(idp)
    assert _login_outcomes(telemetry) == before
    environment_switches.delenv("DASH_OAUTH_OTEL_METRICS")
    _login_over_http(idp)
    assert _login_outcomes(telemetry) == before + 1


# -- without the SDK -----------------------------------------------------------------------

_WITHOUT_SDK = r"""
import importlib.abc
import json
import os
import secrets
import sys


class NoSDK(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoSDK())

from opentelemetry import trace

from dash_oauth_otel import MemoryStore, OAuthClient, handle_callback, oidc_discover
from dash_oauth_otel import prepare_call, refresh_token, revoke_token
from examples.basic_app import create_app
from tests.idp.harness import login
from tests.idp.harness import logout

issuer = os.environ["ISSUER"]
provider = oidc_discover(issuer, name="test-idp", allow_insecure_loopback=True)
core = OAuthClient(
    provider=provider, client_id="conf-basic", client_secret="conf-basic-secret",
    redirect_uri="http://127.0.0.1:9/cb", scopes=("profile",),
    state_key="catalog-key-Jm4Xq9Wz2Lr7Vt5Bn8Yc3Pd6Hf1Ks",
    state_store=MemoryStore(), use_par=False,
)
browser = secrets.token_urlsafe(32)
token = handle_callback(core, login(prepare_call(core, browser).url).params, browser)
fresh = refresh_token(core, token)
revoked = revoke_token(core, fresh, "refresh").revoked

origin = os.environ["APP_ORIGIN"]
client = OAuthClient(
    provider=provider, client_id=os.environ["APP_CLIENT_ID"],
    client_secret=os.environ["APP_CLIENT_SECRET"], redirect_uri=origin + "/oauth/callback",
    scopes=("profile",), state_key="catalog-key-Jm4Xq9Wz2Lr7Vt5Bn8Yc3Pd6Hf1Ks",
    state_store=MemoryStore(),
)
app = create_app(client)
web = app.server.test_client()
first = web.get("/oauth/login?next=/", base_url=origin)
result = login(first.headers["Location"])
back = result.callback_url[len(origin):]
landed = web.get(back, base_url=origin)
status = web.get("/oauth/status", base_url=origin).get_json()
print(json.dumps({
    "core_sub": token.subject,
    "revoked": revoked,
    "landed": landed.status_code,
    "authenticated": status["authenticated"],
    "sdk_modules": sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")),
    "tracer_provider": type(trace.get_tracer_provider()).__name__,
}))
"""


def test_login_works_without_the_sdk(idp):
    origin = "http://127.0.0.1:8050"
    registered = idp.register_client([f"{origin}/oauth/callback"])
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DASH_OAUTH_OTEL_", "PYTHONPATH"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        ISSUER=idp.issuer,
        APP_ORIGIN=origin,
        APP_CLIENT_ID=registered.client_id,
        APP_CLIENT_SECRET=registered.client_secret or "",
    )
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SDK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {
        "core_sub": "alice",
        "revoked": True,
        "landed": 303,
        "authenticated": True,
        "sdk_modules": [],
        "tracer_provider": "ProxyTracerProvider",
    }
