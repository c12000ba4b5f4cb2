"""The benchmarked WSGI apps, configured from the environment (one module for every variant).

``gunicorn benchmarks.apps:server`` serves one variant of the same Dash app:
the same layout and the same ``/_dash-update-component`` callback, with

* ``noauth``   - nothing in front of it;
* ``module``   - ``DashOAuth`` (this project);
* ``dashauth`` - dash-auth's ``OIDCAuth`` (authlib underneath, Flask session cookie);
* ``authlib``  - authlib's Flask client with its defaults and two hand-written
  routes (login, callback), the reference of the login-cost figure.

Environment:

``BENCH_VARIANT``  one of the above;
``BENCH_ORIGIN``   ``http://127.0.0.1:<port>`` the app is served on;
``BENCH_ISSUER``, ``BENCH_CLIENT_ID``, ``BENCH_CLIENT_SECRET``: the provider and client;
``BENCH_SECRET``   the shared secret (module secret key / Flask secret key);
``BENCH_STORE``    ``diskcache:<directory>`` or ``redis:<namespace>`` (module only);
``BENCH_FLOW``     ``defaults`` (PAR and userinfo as the module picks them) or
                   ``plain`` (no PAR, no userinfo: the provider calls authlib makes);
``BENCH_OTEL``     ``1`` installs the OpenTelemetry SDK in each worker (batch span
                   processor and batch log processor into in-memory exporters, a
                   meter provider with an in-memory reader); otherwise no SDK is
                   installed and the API stays a no-op.
"""

from __future__ import annotations

import os

from dash import Dash
from dash import Input
from dash import Output
from dash import html

CALLBACK_BODY = (
    '{"output":"answer.children","outputs":{"id":"answer","property":"children"},'
    '"inputs":[{"id":"go","property":"n_clicks","value":1}],'
    '"changedPropIds":["go.n_clicks"],"state":[]}'
)
"""The POST body of the benchmarked callback (what the Dash renderer sends on a click)."""


def install_otel_sdk() -> None:
    """Install SDK providers exporting to memory (in this process, i.e. per worker)."""
    from opentelemetry import _logs
    from opentelemetry import metrics
    from opentelemetry import trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(InMemoryLogRecordExporter()))
    _logs.set_logger_provider(logger_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def base_app(**kwargs: object) -> Dash:
    """The app every variant shares: a button and one callback."""
    app = Dash(__name__, **kwargs)  # type: ignore[arg-type]
    app.layout = html.Div([html.H1("Reports"), html.Button("Go", id="go"), html.Pre(id="answer")])

    @app.callback(Output("answer", "children"), Input("go", "n_clicks"), prevent_initial_call=True)
    def answer(clicks: int) -> str:
        return f"clicks={clicks}"

    return app


def _store(spec: str):  # type: ignore[no-untyped-def]
    from dash_oauth_otel import DiskcacheStore
    from dash_oauth_otel import RedisStore

    kind, _, arg = spec.partition(":")
    if kind == "redis":
        return RedisStore.from_url("redis://127.0.0.1:6379/0", namespace=arg)
    return DiskcacheStore(arg)


def module_app(env: dict[str, str]) -> Dash:
    from dash_oauth_otel import OAuthClient
    from dash_oauth_otel import oidc_discover
    from dash_oauth_otel.adapter import DashOAuth

    plain = env.get("BENCH_FLOW", "defaults") == "plain"
    client = OAuthClient(
        provider=oidc_discover(env["BENCH_ISSUER"], allow_insecure_loopback=True),
        client_id=env["BENCH_CLIENT_ID"],
        client_secret=env["BENCH_CLIENT_SECRET"],
        redirect_uri=env["BENCH_ORIGIN"] + "/oauth/callback",
        scopes=("profile", "email", "groups"),
        state_key=env["BENCH_SECRET"],
        state_store=_store(env["BENCH_STORE"]),
        use_par=False if plain else None,
        fetch_userinfo=not plain,
    )
    app = base_app()
    # Logins are the load here: no per-process start limit in the way.
    DashOAuth(app, client, login_rate_per_second=10_000, login_burst=10_000)
    return app


def dashauth_app(env: dict[str, str]) -> Dash:
    from dash_auth import OIDCAuth

    app = base_app()
    auth = OIDCAuth(app, secret_key=env["BENCH_SECRET"])
    auth.register_provider(
        "idp",
        client_id=env["BENCH_CLIENT_ID"],
        client_secret=env["BENCH_CLIENT_SECRET"],
        server_metadata_url=env["BENCH_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email groups"},
    )
    return app


def authlib_app(env: dict[str, str]) -> Dash:
    """authlib's Flask client, defaults only: the login-cost reference."""
    import flask
    from authlib.integrations.flask_client import OAuth

    app = base_app()
    server = app.server
    server.secret_key = env["BENCH_SECRET"]
    oauth = OAuth(server)
    oauth.register(
        "idp",
        client_id=env["BENCH_CLIENT_ID"],
        client_secret=env["BENCH_CLIENT_SECRET"],
        server_metadata_url=env["BENCH_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email groups"},
    )
    redirect_uri = env["BENCH_ORIGIN"] + "/auth/callback"

    @server.route("/auth/login")
    def login() -> object:
        return oauth.idp.authorize_redirect(redirect_uri)

    @server.route("/auth/callback")
    def callback() -> object:
        token = oauth.idp.authorize_access_token()
        flask.session["user"] = token["userinfo"]
        return flask.redirect("/", code=303)

    return app


def build(env: dict[str, str] | None = None) -> Dash:
    env = dict(os.environ if env is None else env)
    if env.get("BENCH_OTEL") == "1":
        install_otel_sdk()
    variant = env.get("BENCH_VARIANT", "noauth")
    if variant == "noauth":
        return base_app()
    if variant == "module":
        return module_app(env)
    if variant == "dashauth":
        return dashauth_app(env)
    if variant == "authlib":
        return authlib_app(env)
    raise SystemExit(f"unknown BENCH_VARIANT {variant!r}")


if os.environ.get("BENCH_VARIANT"):
    server = build().server
