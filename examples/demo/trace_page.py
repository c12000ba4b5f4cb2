"""The trace page: the current user's latest login, drawn live.

The login's spans form a waterfall (Plotly), its audit events a table beside
it, and the module's metrics small charts below; a ``dcc.Interval`` redraws
everything every 2 s.  A picker switches to earlier logins and to token
refreshes of the user's sessions.
"""

from __future__ import annotations

import time
from typing import Any

import dash
from dash import Input
from dash import Output
from dash import dcc
from dash import html

from dash_oauth_otel.adapter import current_user
from dash_oauth_otel.telemetry import digest
from dash_oauth_otel.telemetry import metrics as instruments
from examples.demo import figures
from examples.demo.observability import Observability
from examples.demo.queries import Operation
from examples.demo.queries import SpanRow
from examples.demo.queries import busy_stretches
from examples.demo.queries import counter_totals
from examples.demo.queries import event_details
from examples.demo.queries import histogram_buckets
from examples.demo.queries import operation_events
from examples.demo.queries import operation_spans
from examples.demo.queries import user_operations

__all__ = ["LATEST", "layout", "register_callbacks"]

LATEST = "latest-login"
REFRESH_MS = 2000
_OUTCOME_COLORS = {
    "success": figures.STATUS_COLORS["OK"],
    "failure": figures.STATUS_COLORS["ERROR"],
}


def layout(**_: Any) -> html.Div:
    """The page's static frame; the callback fills it in."""
    return html.Div(
        [
            html.Div(
                [
                    html.Div(
                        [
                            html.H1("Login trace", className="page-title"),
                            html.P(
                                "Every step of your sign-in as OpenTelemetry spans, "
                                "with the audit events it wrote. Updates every 2 s.",
                                className="muted",
                            ),
                        ]
                    ),
                    dcc.Dropdown(
                        id="trace-operation",
                        options=[{"label": "Latest login", "value": LATEST}],
                        value=LATEST,
                        clearable=False,
                        searchable=False,
                        className="operation-picker",
                    ),
                ],
                className="page-head",
            ),
            html.Div(id="trace-summary", className="chips"),
            html.Div(
                [
                    html.Section(
                        [
                            html.H2("Span waterfall"),
                            dcc.Graph(
                                id="trace-waterfall",
                                config={"displaylogo": False},
                                figure=figures.empty_figure("Loading…", height=300),
                            ),
                        ],
                        className="card waterfall-card",
                    ),
                    html.Section(
                        [
                            html.H2("Audit events"),
                            html.Div(html.Div(id="audit-table"), className="audit-scroll"),
                        ],
                        className="card audit-card",
                    ),
                ],
                className="trace-row",
            ),
            html.H2("Metrics of this process", className="section-title"),
            html.Div(id="metric-kpis", className="kpis"),
            html.Div(
                [
                    html.Section(
                        dcc.Graph(id="metric-logins", config={"displayModeBar": False}),
                        className="card",
                    ),
                    html.Section(
                        dcc.Graph(id="metric-http", config={"displayModeBar": False}),
                        className="card",
                    ),
                    html.Section(
                        dcc.Graph(id="metric-refreshes", config={"displayModeBar": False}),
                        className="card",
                    ),
                ],
                className="metric-row",
            ),
            dcc.Interval(id="trace-interval", interval=REFRESH_MS),
        ],
        className="trace-page",
    )


def _chip(label: str, value: str, *, cid: str | None = None, tone: str = "") -> html.Span:
    shown = html.Span(value, id=cid) if cid else html.Span(value)
    return html.Span([html.Span(label, className="chip-label"), shown], className=f"chip {tone}")


def _summary(op: Operation | None, rows: list[SpanRow], name: str) -> list[Any]:
    if op is None:
        return [
            _chip("user", name),
            _chip("status", "no login recorded for you in this process yet", tone="warn"),
        ]
    errors = sum(1 for r in rows if r.status == "ERROR")
    busy = sum(end - start for start, end in busy_stretches(rows))
    wall = max((r.end_ms for r in rows), default=0.0)
    otel_ids = sorted({r.trace_id for r in rows})
    return [
        _chip("operation", op.label, cid="trace-operation-label"),
        _chip("correlation id", op.correlation_id, cid="trace-correlation-id"),
        _chip("otel trace", ", ".join(t[:12] + "…" for t in otel_ids) or "—"),
        _chip("in the app", f"{busy:.0f} ms"),
        _chip("wall clock", f"{wall / 1000:.2f} s"),
        _chip(
            "spans",
            f"{len(rows)} · {errors} failed",
            cid="trace-span-count",
            tone="bad" if errors else "good",
        ),
    ]


def _audit_table(events: list[dict[str, Any]]) -> html.Div | html.Table:
    if not events:
        return html.Div("No audit events for this operation.", className="muted")
    origin = float(events[0]["timestamp"])
    body = []
    for event in events:
        kind = str(event["type"])
        tone = "bad" if "fail" in kind or "error" in kind or "reject" in kind else ""
        body.append(
            html.Tr(
                [
                    html.Td(
                        [
                            time.strftime("%H:%M:%S", time.localtime(event["timestamp"])),
                            html.Span(
                                f"+{(float(event['timestamp']) - origin) * 1000:.0f} ms",
                                className="muted small",
                            ),
                        ],
                        className="nowrap",
                    ),
                    html.Td(
                        [
                            html.Code(kind, className=f"event {tone}".strip()),
                            html.Div(
                                [html.Span(pair) for pair in event_details(event).split("  ")],
                                className="details",
                            ),
                        ]
                    ),
                ]
            )
        )
    head = html.Thead(html.Tr([html.Th("time"), html.Th("event and its fields")]))
    return html.Table([head, html.Tbody(body)], className="audit", id="audit-events")


def _kpis(obs: Observability, data: Any) -> list[html.Div]:
    def kpi(label: str, value: float | int) -> html.Div:
        return html.Div(
            [html.Div(f"{value:g}", className="kpi-value"), html.Div(label, className="kpi-label")],
            className="kpi",
        )

    logins = counter_totals(data, instruments.LOGIN_OUTCOMES, "outcome")
    refreshes = counter_totals(data, instruments.REFRESHES, "outcome")
    active = counter_totals(data, instruments.ACTIVE_SESSIONS, "oauth.provider.name")
    return [
        kpi("active sessions", sum(active.values())),
        kpi("logins", sum(logins.values())),
        kpi("token refreshes", sum(refreshes.values())),
        kpi("spans kept", len(obs.spans.spans())),
        kpi("audit events", len(obs.audit.events())),
        kpi("OTel log records", obs.log_record_count()),
    ]


def register_callbacks(app: dash.Dash, obs: Observability) -> None:
    """Attach the page's live-update callback to ``app``."""

    @app.callback(
        Output("trace-operation", "options"),
        Output("trace-summary", "children"),
        Output("trace-waterfall", "figure"),
        Output("audit-table", "children"),
        Output("metric-kpis", "children"),
        Output("metric-logins", "figure"),
        Output("metric-http", "figure"),
        Output("metric-refreshes", "figure"),
        Input("trace-interval", "n_intervals"),
        Input("trace-operation", "value"),
    )
    def update(_: int | None, chosen: str | None) -> tuple[Any, ...]:
        user = current_user()
        if user is None:  # the guard lets no callback through without a session
            raise dash.exceptions.PreventUpdate
        events = obs.audit.events()
        operations = user_operations(events, digest(user.sub) or "")
        logins = [op for op in operations if op.kind == "login"]
        op = next((o for o in operations if o.key == chosen), None)
        if op is None:
            op = logins[0] if logins else None
        rows = operation_spans(obs.spans.spans(), op) if op else []
        trace_ids = {r.trace_id for r in rows}
        mine = operation_events(events, op.correlation_id, trace_ids) if op else []
        options = [{"label": "Latest login", "value": LATEST}] + [
            {"label": o.label, "value": o.key} for o in operations[:30]
        ]
        data = obs.metrics_data()
        bounds, buckets = histogram_buckets(
            data, instruments.HTTP_CLIENT_REQUEST_DURATION, "http.request.method"
        )
        return (
            options,
            _summary(op, rows, user.name or user.sub),
            figures.waterfall(rows),
            _audit_table(mine),
            _kpis(obs, data),
            figures.bar_chart(
                counter_totals(data, instruments.LOGIN_OUTCOMES, "outcome"),
                title="Login outcomes",
                unit="logins",
                colors=_OUTCOME_COLORS,
            ),
            figures.histogram_chart(
                bounds, buckets, title="Provider calls (http.client.request.duration)"
            ),
            figures.bar_chart(
                counter_totals(data, instruments.REFRESHES, "outcome"),
                title="Token refreshes",
                unit="refreshes",
                colors=_OUTCOME_COLORS,
            ),
        )
