"""Coexistence with opentelemetry-instrumentation-flask."""

from __future__ import annotations

from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.trace import SpanKind

from examples.basic_app import create_app
from tests.adapter.conftest import serve_app


def _instrumented(client, **options):
    app = create_app(client, **options)
    FlaskInstrumentor().instrument_app(app.server)
    return app


def test_denied_requests_still_get_a_server_span(idp, telemetry):
    with serve_app(idp, factory=_instrumented) as running, running.http() as http:
        assert http.get("/reports").status_code == 302
        assert http.get("/_dash-layout").status_code == 401
    servers = [s for s in telemetry.spans() if s.kind is SpanKind.SERVER]
    routes = sorted(s.attributes.get("http.route", s.name) for s in servers)
    statuses = sorted(
        s.attributes.get("http.response.status_code") or s.attributes.get("http.status_code")
        for s in servers
    )
    assert len(servers) == 2, routes
    assert statuses == [302, 401]


def test_module_spans_nest_under_the_server_span(idp, telemetry):
    with serve_app(idp, factory=_instrumented) as running, running.http() as http:
        http.get("/oauth/login?next=/")
    login = telemetry.span("dash_oauth_otel.login.request")
    server = next(s for s in telemetry.spans() if s.kind is SpanKind.SERVER)
    # The login request starts its own trace (one trace per login, as catalogued);
    # the server span of the request that started it is linked.
    assert login.parent is None
    assert any(link.context.span_id == server.context.span_id for link in login.links)


def test_callback_span_links_its_server_span(idp, telemetry):
    from tests.idp.harness import login

    with serve_app(idp, factory=_instrumented) as running, running.http() as http:
        start = http.get("/oauth/login?next=/")
        login(start.headers["location"], http_client=http).deliver(http)
    callback = telemetry.span("dash_oauth_otel.callback")
    login_span = telemetry.span("dash_oauth_otel.login.request")
    assert callback.parent.span_id == login_span.context.span_id
    server_ids = {s.context.span_id for s in telemetry.spans() if s.kind is SpanKind.SERVER}
    assert {link.context.span_id for link in callback.links} & server_ids
