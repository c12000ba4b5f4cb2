"""The demo Dash app: a home page, a page per group and the trace page, behind login.

Built with Dash Pages.  The group pages are registered with ``groups=[...]``,
so the module renders them only for members; their data comes from callbacks
guarded by :func:`~dash_oauth_otel.adapter.require_groups` as well, so a
non-member cannot fetch it by calling the callback directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dash
import flask
from dash import Dash
from dash import Input
from dash import Output
from dash import dcc
from dash import html

from dash_oauth_otel import OAuthClient
from dash_oauth_otel.adapter import DashOAuth
from dash_oauth_otel.adapter import auth
from dash_oauth_otel.adapter import current_user
from dash_oauth_otel.adapter import require_groups
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import digest
from dash_oauth_otel.telemetry import metrics as instruments
from examples.demo import trace_page
from examples.demo.observability import Observability
from examples.demo.queries import event_details
from examples.demo.queries import histogram_stats

__all__ = ["PAGES", "DemoSettings", "build_app"]

PAGES = (
    ("/", "Home", None),
    ("/analysts", "Analysts", "analysts"),
    ("/admins", "Admins", "admins"),
    ("/trace", "Trace", None),
)
"""(path, title, group needed) of every page, in navigation order."""


@dataclass(frozen=True)
class DemoSettings:
    """Knobs of the demo's login module.

    :param token_ttl: Access-token lifetime the provider grants (seconds).
    :param refresh_lead: Refresh when the token expires within this many seconds.
    :param refresh_interval: How often an open page checks in (seconds).
    """

    token_ttl: int = 30
    refresh_lead: float = 10.0
    refresh_interval: float = 5.0


def _session_subject(module: DashOAuth) -> str | None:
    """The subject digest of the current request's session (for tagging audit events)."""
    record = flask.g.get("dash_oauth_session") or module.sessions.load(
        module.cookies.session_id(flask.request)
    )
    return digest(record.token.subject) if record is not None else None


def _card(title: str, *children: Any) -> html.Section:
    return html.Section([html.H2(title), *children], className="card")


def _home_layout(settings: DemoSettings, logout: Any) -> Any:
    def layout(**_: Any) -> html.Div:
        user = current_user()
        if user is None:  # pages render only for signed-in users
            return html.Div()
        groups = [html.Span(g, className="tag") for g in user.groups] or [
            html.Span("none", className="muted")
        ]
        facts = [
            ("Name", user.name or "—"),
            ("Subject (sub)", user.sub),
            ("Email", user.email or "—"),
        ]
        return html.Div(
            [
                html.H1(
                    f"Welcome, {user.name or user.sub}", id="home-title", className="page-title"
                ),
                html.Div(
                    [
                        _card(
                            "Who is signed in",
                            html.Dl(
                                [
                                    item
                                    for label, value in facts
                                    for item in (html.Dt(label), html.Dd(value))
                                ]
                                + [html.Dt("Groups"), html.Dd(groups, id="home-groups")],
                                id="home-user",
                            ),
                            html.Div(logout, className="actions"),
                        ),
                        _card(
                            "Access token",
                            html.Div(id="token-countdown", className="countdown"),
                            html.Div(
                                html.Div(id="token-bar", className="bar-fill"), className="bar"
                            ),
                            html.P(
                                f"The provider grants {settings.token_ttl}-second tokens; the "
                                f"module refreshes yours when fewer than "
                                f"{settings.refresh_lead:g} s remain (each open page checks in "
                                f"every {settings.refresh_interval:g} s). No token ever reaches "
                                "this page: the countdown is computed on the server.",
                                className="muted small",
                            ),
                            html.Div(id="token-refreshes", className="small"),
                            dcc.Interval(id="home-tick", interval=1000),
                        ),
                        _card(
                            "Things to try",
                            html.Ul(
                                [
                                    html.Li(
                                        [
                                            dcc.Link("Trace", href="/trace"),
                                            ": the spans and audit events of your login, live.",
                                        ]
                                    ),
                                    html.Li(
                                        [
                                            dcc.Link("Analysts", href="/analysts"),
                                            " and ",
                                            dcc.Link("Admins", href="/admins"),
                                            ": pages only members of those groups can see.",
                                        ]
                                    ),
                                    html.Li("Sign out and in again as bob (analysts only)."),
                                    html.Li("Wait for a refresh, then pick it on the trace page."),
                                ]
                            ),
                        ),
                    ],
                    className="grid",
                ),
            ]
        )

    return layout


def _analysts_layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H1("Analysts", className="page-title"),
            html.P("Visible to the analysts group only.", id="analysts-badge", className="muted"),
            _card("Latency, from the module's metrics", html.Div(id="analysts-latency")),
            dcc.Interval(id="analysts-tick", interval=3000),
        ]
    )


def _admins_layout(**_: Any) -> html.Div:
    return html.Div(
        [
            html.H1("Admins", className="page-title"),
            html.P("Visible to the admins group only.", id="admins-badge", className="muted"),
            _card("Recent audit events, all users", html.Div(id="admins-audit")),
            dcc.Interval(id="admins-tick", interval=3000),
        ]
    )


def _shell(logout: Any) -> html.Div:
    return html.Div(
        [
            html.Header(
                [
                    html.Div(
                        [html.Span("◆", className="logo"), "dash-oauth-otel", html.Small("demo")],
                        className="brand",
                    ),
                    html.Nav(id="nav"),
                    html.Div([html.Span(id="header-user"), logout], className="header-user"),
                ],
                className="topbar",
            ),
            html.Main(dash.page_container, className="content"),
        ]
    )


def _register_callbacks(app: Dash, obs: Observability, settings: DemoSettings) -> None:
    @app.callback(
        Output("nav", "children"),
        Output("header-user", "children"),
        Input("_pages_location", "pathname"),
    )
    def navigation(pathname: str | None) -> tuple[list[Any], str]:
        user = current_user()
        links = []
        for path, title, group in PAGES:
            allowed = group is None or (user is not None and user.in_groups(group))
            classes = "nav-link" + (" active" if pathname == path else "")
            classes += "" if allowed else " locked"
            hint = None if allowed else f"Only for members of {group}"
            links.append(dcc.Link(title, href=path, className=classes, title=hint))
        who = f"{user.name or user.sub} · {', '.join(user.groups) or 'no groups'}" if user else ""
        return links, who

    @app.callback(
        Output("token-countdown", "children"),
        Output("token-bar", "style"),
        Output("token-refreshes", "children"),
        Input("home-tick", "n_intervals"),
    )
    def countdown(_: int | None) -> tuple[Any, dict[str, str], str]:
        token = auth.token
        user = current_user()
        left = token.expires_in() if token is not None else None
        if left is None or user is None:
            return "no expiry given", {"width": "0%"}, ""
        left = max(0.0, left)
        share = min(100.0, 100.0 * left / max(settings.token_ttl, 1))
        tone = "#2f9e77" if left > settings.refresh_lead else "#f0a030"
        mine = digest(user.sub)
        refreshes = sum(
            1
            for e in obs.audit.events()
            if e["type"] == audit.AUDIT_TOKEN_REFRESH and e.get("session_sub_digest") == mine
        )
        expires = time.strftime("%H:%M:%S", time.localtime(time.time() + left))
        return (
            [
                html.Span(f"{left:.0f} s", id="token-seconds"),
                html.Small(f" left · expires {expires}"),
            ],
            {"width": f"{share:.0f}%", "background": tone},
            f"Token refreshes for you so far: {refreshes}",
        )

    @app.callback(Output("analysts-latency", "children"), Input("analysts-tick", "n_intervals"))
    @require_groups(["analysts"])
    def analysts_latency(_: int | None) -> Any:
        data = obs.metrics_data()
        calls = histogram_stats(
            data, instruments.HTTP_CLIENT_REQUEST_DURATION, "http.request.method"
        )
        logins = histogram_stats(data, instruments.LOGIN_DURATION, "oauth.provider.name")
        measured = [(f"{method} to the provider", stats) for method, stats in sorted(calls.items())]
        measured += [(f"login at {name} (redirect to session)", s) for name, s in logins.items()]
        if not measured:
            return html.P("Nothing measured yet.", className="muted")
        rows = [
            html.Tr(
                [
                    html.Td(label),
                    html.Td(str(count)),
                    html.Td(f"{mean * 1000:.1f} ms"),
                    html.Td(f"{largest * 1000:.1f} ms"),
                ]
            )
            for label, (count, mean, largest) in measured
        ]
        head = html.Thead(
            html.Tr([html.Th("what"), html.Th("count"), html.Th("mean"), html.Th("max")])
        )
        return html.Table([head, html.Tbody(rows)], className="audit")

    @app.callback(Output("admins-audit", "children"), Input("admins-tick", "n_intervals"))
    @require_groups(["admins"])
    def admins_audit(_: int | None) -> Any:
        events = obs.audit.events()[-25:][::-1]
        rows = [
            html.Tr(
                [
                    html.Td(time.strftime("%H:%M:%S", time.localtime(e["timestamp"]))),
                    html.Td(html.Code(e["type"], className="event")),
                    html.Td(event_details(e), className="details"),
                ]
            )
            for e in events
        ]
        head = html.Thead(html.Tr([html.Th("time"), html.Th("event"), html.Th("fields")]))
        return html.Table([head, html.Tbody(rows)], className="audit")


def build_app(client: OAuthClient, obs: Observability, settings: DemoSettings) -> Dash:
    """Build the demo app for ``client`` and attach the login module to it."""
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="",
        title="dash-oauth-otel demo",
        update_title="",
    )
    module = DashOAuth(
        app,
        client,
        audit_hook=obs.audit,
        refresh_lead_seconds=settings.refresh_lead,
        refresh_interval_seconds=settings.refresh_interval,
        post_logout_path="/",
    )
    obs.audit.session_subject = lambda: _session_subject(module)
    header_logout = html.Div(
        module.logout_button("Sign out", id="header-logout"), className="ghost"
    )
    home_logout = module.logout_button("Sign out", id="logout")
    layouts = {
        "/": _home_layout(settings, home_logout),
        "/analysts": _analysts_layout,
        "/admins": _admins_layout,
        "/trace": trace_page.layout,
    }
    for order, (path, title, group) in enumerate(PAGES):
        dash.register_page(  # type: ignore[no-untyped-call]
            f"demo{path.replace('/', '.') if path != '/' else '.home'}",
            path=path,
            name=title,
            title=f"{title} · dash-oauth-otel demo",
            order=order,
            layout=layouts[path],
            **({"groups": [group]} if group else {}),
        )
    app.layout = _shell(header_logout)
    _register_callbacks(app, obs, settings)
    trace_page.register_callbacks(app, obs)
    return app
