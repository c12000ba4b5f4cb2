"""A Dash app behind login: the smallest complete example.

Run against any OpenID provider::

    DASH_OAUTH_ISSUER=https://login.example.com \
    DASH_OAUTH_CLIENT_ID=dash-app DASH_OAUTH_CLIENT_SECRET=... \
    DASH_OAUTH_REDIRECT_URI=http://127.0.0.1:8050/oauth/callback \
    DASH_OAUTH_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \
    python examples/basic_app.py

Register ``http://127.0.0.1:8050/oauth/callback`` as redirect URI and
``http://127.0.0.1:8050/oauth/signed-out`` as post-logout redirect URI at the provider.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from dash import Dash
from dash import Input
from dash import Output
from dash import html

from dash_oauth_otel import OAuthClient
from dash_oauth_otel import oidc_discover
from dash_oauth_otel.adapter import DashOAuth
from dash_oauth_otel.adapter import auth
from dash_oauth_otel.adapter import current_user


def create_app(client: OAuthClient, *, secret_key: str | None = None, **options: Any) -> Dash:
    """Build the example app for ``client`` (module options as keywords)."""
    prefix = urlsplit(client.redirect_uri).path.rsplit("oauth/callback", 1)[0] or "/"
    app = Dash(__name__, routes_pathname_prefix=prefix, requests_pathname_prefix=prefix)
    module = DashOAuth(app, client, secret_key=secret_key, **options)
    app.layout = html.Div(
        [
            html.H1("Reports"),
            html.P(id="greeting"),
            html.Button("Who am I?", id="whoami"),
            html.Pre(id="answer"),
            module.logout_button("Log out", id="logout"),
        ]
    )

    @app.callback(Output("greeting", "children"), Input("greeting", "id"))
    def greet(_: str) -> str:
        user = current_user()
        return f"Signed in as {user.name}" if user else "Not signed in"

    @app.callback(
        Output("answer", "children"), Input("whoami", "n_clicks"), prevent_initial_call=True
    )
    def whoami(clicks: int) -> str:
        user = current_user()
        if user is None:  # the guard lets no callback through without a session
            return "not signed in"
        expires = auth.token.expires_in() if auth.token else None
        return (
            f"sub={user.sub} groups={','.join(user.groups)} clicks={clicks} "
            f"token_expires_in={int(expires) if expires is not None else 'n/a'}"
        )

    return app


def main() -> None:  # pragma: no cover - manual entry point
    provider = oidc_discover(
        os.environ["DASH_OAUTH_ISSUER"],
        allow_insecure_loopback=os.environ.get("DASH_OAUTH_ALLOW_INSECURE_LOOPBACK") == "1",
    )
    client = OAuthClient(
        provider=provider,
        client_id=os.environ["DASH_OAUTH_CLIENT_ID"],
        client_secret=os.environ.get("DASH_OAUTH_CLIENT_SECRET") or None,
        redirect_uri=os.environ["DASH_OAUTH_REDIRECT_URI"],
        scopes=("profile", "email"),
        state_key=os.environ["DASH_OAUTH_SECRET_KEY"],
    )
    app = create_app(client)
    port = urlsplit(client.redirect_uri).port or 8050
    app.run(host="127.0.0.1", port=port, debug=False)


if __name__ == "__main__":
    main()
