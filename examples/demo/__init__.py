"""The demo: a Dash app behind login whose every step can be watched as it happens.

``scripts/demo`` (or ``python -m examples.demo``) starts the test OpenID
provider on loopback, installs the OpenTelemetry SDK in-process and serves a
Dash app with a home page, a page per group and a trace page drawing the
spans, audit events and metrics of the current user's login.
"""
