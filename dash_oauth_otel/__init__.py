"""Observable OAuth 2.0 / OpenID Connect login for Plotly Dash."""

from __future__ import annotations

from dash_oauth_otel._version import __version__ as __version__
