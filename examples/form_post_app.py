"""The basic app with ``response_mode=form_post``: the provider POSTs the callback.

The module checks the POST, keeps it under a one-time handle and answers with
``303 See Other`` to a ``GET`` that consumes it, so ``SameSite=Lax`` cookies
work and the address bar never holds the response.  Configure from the
environment like ``examples/basic_app.py``::

    python examples/form_post_app.py
"""

from __future__ import annotations

from dash_oauth_otel.adapter import client_from_env
from examples.basic_app import create_app


def main() -> None:  # pragma: no cover - manual entry point
    client = client_from_env(response_mode="form_post")
    create_app(client).run(host="127.0.0.1", port=8050, debug=False)


if __name__ == "__main__":
    main()
