"""Command line of the demo: start the provider, the telemetry and the app; stop them on exit.

``python -m examples.demo [--host 127.0.0.1] [--port 8050] [--token-ttl 30]``
(``scripts/demo`` sets up the environment and runs this).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from werkzeug.serving import make_server

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from examples.demo import observability
from examples.demo.app import DemoSettings
from examples.demo.app import build_app
from tests.idp.harness import TestProvider

__all__ = ["main", "parse_args"]

USERS = "alice (admins, analysts) · bob (analysts) · any other name (no groups); any password"


class _LateApp:
    """A WSGI app whose target is set once the server's port is known."""

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.target(environ, start_response)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Observable OAuth login for Dash: a demo app with an embedded OpenID provider.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8050, help="port of the app (0: any free port)")
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=30,
        help="access-token lifetime in seconds (short, so refreshes are visible)",
    )
    args = parser.parse_args(argv)
    if args.token_ttl < 3:
        parser.error("--token-ttl must be at least 3 seconds")
    return args


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _banner(
    origin: str, issuer: str, settings: DemoSettings, obs: observability.Observability
) -> str:
    exporting = "in memory (the trace page)"
    if obs.exporting_to:
        exporting += f" and OTLP to {obs.exporting_to}"
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        exporting += " (OTLP endpoint set, but opentelemetry-exporter-otlp-proto-http is missing)"
    return "\n".join(
        [
            "",
            "dash-oauth-otel demo",
            f"  Open       {origin}/",
            f"  Trace      {origin}/trace",
            f"  Users      {USERS}",
            f"  Provider   {issuer} (oidc-provider on loopback)",
            f"  Tokens     {settings.token_ttl} s access tokens, refreshed when fewer than "
            f"{settings.refresh_lead:g} s remain",
            f"  Telemetry  {exporting}",
            "Press Ctrl+C to stop.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until interrupted; return the exit status."""
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = DemoSettings(
        token_ttl=args.token_ttl,
        refresh_lead=min(10.0, args.token_ttl / 3),
        refresh_interval=min(5.0, max(1.0, args.token_ttl / 6)),
    )
    late = _LateApp()
    try:
        server = make_server(args.host, args.port, late, threaded=True)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host  # noqa: S104
    origin = f"http://{host}:{server.server_port}"
    obs = observability.install()
    idp = TestProvider()
    _stop_on_sigterm()
    provider = None
    try:
        idp.start()
        registered = idp.register_client(
            [f"{origin}/oauth/callback"],
            post_logout_redirect_uris=[f"{origin}/oauth/signed-out"],
            access_token_ttl=settings.token_ttl,
        )
        provider = oidc_discover(idp.issuer, name="demo-idp", allow_insecure_loopback=True)
        client = OAuthClient(
            provider=provider,
            client_id=registered.client_id,
            client_secret=registered.client_secret,
            redirect_uri=f"{origin}/oauth/callback",
            scopes=("profile", "email", "groups"),
            state_key=secrets.token_urlsafe(32),
            state_store=MemoryStore(),
        )
        late.target = build_app(client, obs, settings).server
        print(_banner(origin, idp.issuer, settings, obs), flush=True)
        server.serve_forever()  # returns on Ctrl+C and SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping the demo and its provider", flush=True)
        server.server_close()
        if provider is not None:
            provider.close()
        idp.stop()
    return 0
