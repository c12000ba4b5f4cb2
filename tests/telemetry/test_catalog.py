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
import logging
import re
import secrets
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

from dash_oauth_otel import CallbackIssuerError
from dash_oauth_otel import CallbackQueryError
from dash_oauth_otel import HTTPError
from dash_oauth_otel import IDTokenError
from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import OAuthProvider
from dash_oauth_otel import StateError
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
from tests import otel
from tests.adapter.conftest import RunningApp
from tests.adapter.conftest import serve_app
from tests.idp.harness import DEFAULT_REDIRECT_URI
from tests.idp.harness import STATIC_CLIENTS
from tests.idp.harness import LoginResult
from tests.idp.harness import TestProvider
from tests.idp.harness import login

ROOT = Path(__file__).resolve().parents[2]
VIGNETTE = ROOT / "vignettes" / "opentelemetry.md"
STATE_KEY = "catalog-state-key-" + "c" * 32

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
    spans.SESSION_END_REVOKE: {spans.LOGOUT, None},
    spans.TOKEN_REVOKE: {spans.SESSION_END_REVOKE, None},
    spans.TOKEN_REVOKE_HTTP: {spans.TOKEN_REVOKE},
    spans.TOKEN_INTROSPECT: {None},
    spans.TOKEN_INTROSPECT_HTTP: {spans.TOKEN_INTROSPECT},
    spans.DISCOVERY: {None},
    spans.DISCOVERY_HTTP: {spans.DISCOVERY},
    spans.JWKS: {spans.CALLBACK_VALIDATE},
    spans.JWKS_HTTP: {spans.JWKS},
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
    log_lines: list[str]
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

    def secret(self, label: str, value: str | None) -> None:
        if value:
            self.secrets[f"{label}#{len(self.secrets)}"] = value


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(record.getMessage())


class _Recorder:
    def __init__(self, run: CatalogRun) -> None:
        self.run = run
        otel.install()

    @contextmanager
    def flow(self, name: str) -> Iterator[Notes]:
        otel._spans.clear()
        otel._logs_exporter.clear()
        captured = otel.Telemetry()
        notes = Notes()
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
                text=captured.exported_text() + "\n" + "\n".join(handler.lines),
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
        finally:
            idp.reset_faults()
            provider.close()


def _module_login(notes: Notes, running: RunningApp, http: httpx.Client) -> httpx.Response:
    notes.secret("client_secret", running.client.client_secret)
    first = http.get("/oauth/login?next=/")
    assert first.status_code == 302, first.text
    notes.secret("binding_cookie", http.cookies.get("dash_oauth_binding"))
    result = login(first.headers["location"], http_client=http)
    _note_response(notes, running.module.client, result)
    return result.deliver(http)


def _note_session(notes: Notes, running: RunningApp, http: httpx.Client) -> Any:
    sid = http.cookies.get("dash_oauth_session")
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
            landed = _module_login(notes, running, http)
            assert landed.status_code == 303, landed.text
            _note_session(notes, running, http)
            status = http.get("/oauth/status").json()
            assert status["authenticated"] is True
            done = http.post("/oauth/logout", data={"csrf_token": status["csrf_token"]})
            assert done.status_code in (200, 303), done.text
            assert http.get("/oauth/status").json()["authenticated"] is False
        _logins_of(notes)

    with rec.flow("module.logout_csrf") as notes:
        with serve_app(idp) as running, running.http() as http:
            assert _module_login(notes, running, http).status_code == 303
            _note_session(notes, running, http)
            refused = http.post("/oauth/logout", data={"csrf_token": "wrong"})
            assert refused.status_code == 403
        _logins_of(notes)

    with rec.flow("module.form_post") as notes:
        with serve_app(idp, response_mode="form_post") as running, running.http() as http:
            notes.secret("client_secret", running.client.client_secret)
            first = http.get("/oauth/login?next=/x")
            notes.secret("binding_cookie", http.cookies.get("dash_oauth_binding"))
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

    with rec.flow("module.login_failure") as notes:
        with serve_app(idp) as running, running.http() as http:
            first = http.get("/oauth/login?next=/")
            notes.secret("binding_cookie", http.cookies.get("dash_oauth_binding"))
            result = login(first.headers["location"], http_client=http)
            _note_response(notes, running.module.client, result)
            http.cookies.delete("dash_oauth_binding")
            failed = result.deliver(http)
            assert failed.status_code == 400
        _logins_of(notes)


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
