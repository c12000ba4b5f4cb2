"""The Dash module: :class:`DashOAuth`.

A Dash author writes::

    app = Dash(__name__)
    auth = DashOAuth(app, client)  # or DashOAuth(client=client).init_app(app)

and the whole app is behind login: routes under ``<prefix>oauth/`` (login,
callback GET and ``form_post`` POST, logout, status, and the provider's
``backchannel-logout`` and ``frontchannel-logout``), a guard before every
request, session cookies and records, token refresh, logout and session end.
Per-app state lives in ``app.server.extensions``; the module keeps no app
reference beyond what its routes need.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

import dash
import flask

from dash_oauth_otel._types import Store
from dash_oauth_otel.adapter import guard
from dash_oauth_otel.adapter import layout
from dash_oauth_otel.adapter import routes
from dash_oauth_otel.adapter.cookies import CookiePolicy
from dash_oauth_otel.adapter.extension import EXTENSION_KEY
from dash_oauth_otel.adapter.extension import get_module
from dash_oauth_otel.adapter.lifecycle import Lifecycle
from dash_oauth_otel.adapter.limits import TokenBucket
from dash_oauth_otel.adapter.options import ModuleOptions
from dash_oauth_otel.adapter.sessions import SessionManager
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.sealing import normalize_secret
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import PermissionDeniedError
from dash_oauth_otel.errors import StoreError
from dash_oauth_otel.stores import DiskcacheStore
from dash_oauth_otel.stores import default_directory
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.settings import AuditHook
from dash_oauth_otel.telemetry.settings import TelemetrySettings
from dash_oauth_otel.telemetry.settings import normalize_digest_key
from dash_oauth_otel.telemetry.settings import use_settings
from dash_oauth_otel.workers.backends import WorkerBackend
from dash_oauth_otel.workers.dispatch import Dispatcher

__all__ = ["EXTENSION_KEY", "DashOAuth", "default_store", "get_module"]


class DashOAuth:
    """Put a Dash app behind OAuth 2.0 / OpenID Connect login.

    :param app: The Dash app (or pass it later to :meth:`init_app`).
    :param client: The :class:`~dash_oauth_otel.OAuthClient`; its
        ``redirect_uri`` must end in ``<requests_pathname_prefix>oauth/callback``.
    :param store: Where login state and sessions live; defaults to the
        client's ``state_store``, else a :class:`~dash_oauth_otel.DiskcacheStore`
        (shared by the processes of one host).
    :param secret_key: At least 32 bytes sealing session records; defaults to
        the client's ``state_key``.  Must be the same on every process.
    :param audit_hook: Called with every audit event (a dict).
    :param audit_digest_key: Key of the digests in audit events; set it to the
        same value on every process so their events correlate.
    :param tracing: Emit spans (``None``: ``DASH_OAUTH_OTEL_TRACING``, default on).
    :param logs: Emit audit events as OTel logs (``DASH_OAUTH_OTEL_LOGS``).
    :param metrics: Record metrics (``DASH_OAUTH_OTEL_METRICS``).
    :param workers: Run the code exchange, refresh and revocation in worker
        processes (:class:`~dash_oauth_otel.workers.ProcessPoolBackend` or
        :class:`~dash_oauth_otel.workers.CeleryBackend`); requests then never
        wait on the provider for a refresh, and logins finish on a "signing you
        in" page.
    :param client_path: Import path of the client in the workers
        (``"myapp.auth:client"``); required with ``workers``.
    :param worker_init: Import path of a function the workers call to set up
        their OpenTelemetry SDK (SDK set-up done in code is not replayed).
    :param worker_timeout: Seconds to wait for a worker's answer.
    :param options: Any :class:`~dash_oauth_otel.adapter.options.ModuleOptions`
        field as a keyword (``auto_redirect``, ``idle_timeout``, ...).
    """

    def __init__(
        self,
        app: dash.Dash | None = None,
        client: OAuthClient | None = None,
        *,
        store: Store | None = None,
        secret_key: str | bytes | None = None,
        audit_hook: AuditHook | None = None,
        audit_digest_key: str | bytes | None = None,
        tracing: bool | None = None,
        logs: bool | None = None,
        metrics: bool | None = None,
        workers: WorkerBackend | None = None,
        client_path: str | None = None,
        worker_init: str | None = None,
        worker_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        if client is None or not isinstance(client, OAuthClient):
            raise ConfigError("DashOAuth needs client=OAuthClient(...).")
        self.options = ModuleOptions(**options)
        self.telemetry = TelemetrySettings(
            tracing=tracing,
            logs=logs,
            metrics=metrics,
            audit_hook=audit_hook,
            digest_key=normalize_digest_key(audit_digest_key) if audit_digest_key else None,
        )
        if client.state_key_is_ephemeral:
            # A random state key opens this process's logins only: under several
            # workers every callback served by another one would fail.
            raise ConfigError(
                "DashOAuth needs the OAuthClient's state_key: 32+ bytes of secret material, "
                "the same on every process of the app (it seals the login state and, unless "
                "secret_key=... is given, the sessions). Generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        self._store = store if store is not None else (client.state_store or default_store(client))
        if client.state_store is None:
            client = client.with_state_store(self._store)
        self.client = client
        secret = secret_key if secret_key is not None else client.state_key
        assert secret is not None  # noqa: S101 - OAuthClient always holds a state key
        self._secret = normalize_secret(secret, what="secret_key")
        if self.options.revoke_on_session_end and client.provider.revocation_endpoint is None:
            raise ConfigError(
                f"revoke_on_session_end=True but {client.provider.name} has no revocation "
                "endpoint; turn the option off or configure revocation_endpoint."
            )
        redirect = urlsplit(client.redirect_uri)
        self.origin = f"{redirect.scheme}://{redirect.netloc}"
        self.cookies = CookiePolicy(
            secure=redirect.scheme == "https",
            suffix=client.namespace[:8],
            samesite=self.options.cookie_samesite,
            binding_max_age=int(client.state_ttl),
        )
        self.sessions = SessionManager(
            store=self._store,
            secret=self._secret,
            context=client.record_context,
            audit_fields=client.audit_fields(),
            idle_timeout=self.options.idle_timeout,
            max_lifetime=self.options.max_lifetime,
            issuer=client.provider.issuer or client.provider.name,
        )
        self.module_id = "dash_oauth_otel"
        # Per module instance and per process: no state is shared between apps.
        self.login_limiter = TokenBucket(
            self.options.login_rate_per_second, self.options.login_burst
        )
        self.dispatcher: Dispatcher | None = None
        if workers is not None:
            if not client_path:
                raise ConfigError(
                    "workers=... needs client_path='package.module:client', the import path "
                    "under which the workers find the same OAuthClient (secrets never travel)."
                )
            self.dispatcher = Dispatcher(
                workers, client_path, worker_init=worker_init, timeout=worker_timeout
            )
        self.lifecycle = Lifecycle(
            client, self.sessions, self.options, self.module_id, self.dispatcher, self.telemetry
        )
        self._routes_prefix: str | None = None
        self._requests_prefix = urlsplit(client.redirect_uri).path.removesuffix("oauth/callback")
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"DashOAuth(client={self.client!r}, options={self.options!r})"

    # -- wiring ----------------------------------------------------------------

    def init_app(self, app: dash.Dash) -> DashOAuth:
        """Attach the module to ``app``: routes, guard, layout components."""
        server = getattr(app, "server", None)
        if not isinstance(server, flask.Flask):
            raise ConfigError(
                "DashOAuth supports Dash apps served by Flask (app.server must be a "
                f"flask.Flask, got {type(server).__name__})."
            )
        routes_prefix = app.config.routes_pathname_prefix or "/"
        requests_prefix = app.config.requests_pathname_prefix or "/"
        expected = requests_prefix + "oauth/callback"
        if urlsplit(self.client.redirect_uri).path != expected:
            raise ConfigError(
                f"The client's redirect_uri path must be {expected!r} for this app (got "
                f"{urlsplit(self.client.redirect_uri).path!r}); register "
                f"{self.origin}{expected} at the provider and use it as redirect_uri."
            )
        if self._routes_prefix not in (None, routes_prefix):
            raise ConfigError(
                f"This DashOAuth already serves apps under {self._routes_prefix!r}; an app "
                f"routed under {routes_prefix!r} needs a DashOAuth of its own."
            )
        self._routes_prefix = routes_prefix
        self._requests_prefix = requests_prefix
        with (
            use_settings(self.telemetry),
            spans.span(
                spans.MODULE_INIT,
                {
                    **self.client.telemetry_attributes(),
                    attr.OAUTH_PHASE: "module.init",
                    attr.DASH_MODULE_ID: self.module_id,
                    "oauth.auto_redirect": self.options.auto_redirect,
                    "oauth.revoke_on_session_end": self.options.revoke_on_session_end,
                    "oauth.indefinite_session": self.options.indefinite_session,
                    "oauth.refresh_lead_seconds": self.options.refresh_lead_seconds,
                    "oauth.reauth_after_seconds": self.options.reauth_after_seconds,
                    "oauth.browser_cookie_samesite": self.options.cookie_samesite,
                    # The session and binding cookies are always set with Path=/.
                    attr.OAUTH_BROWSER_COOKIE_PATH_ROOT: True,
                    attr.OAUTH_REFRESH_PROACTIVELY: self.options.refresh_interval_seconds > 0,
                    attr.DASH_PROCESS_ID: os.getpid(),
                },
                root=True,
            ),
        ):
            server.extensions[EXTENSION_KEY] = self
            server.register_error_handler(PermissionDeniedError, _forbidden)
            server.register_error_handler(
                StoreError, lambda exc: routes.store_failure_page(self, exc)
            )
            routes.register(self, server)
            guard.register(self, server)
            layout.register(self, app)
        return self

    # -- paths -------------------------------------------------------------------

    @property
    def routes_prefix(self) -> str:
        """The Dash app's ``routes_pathname_prefix`` (where the guard starts to look)."""
        return self._routes_prefix or self._requests_prefix

    def route_path(self, name: str) -> str:
        """The Flask rule of a module route (``login``, ``callback``, ...)."""
        return f"{self._routes_prefix}oauth/{name}"

    def url(self, name: str) -> str:
        """The browser-facing path of a module route."""
        return f"{self._requests_prefix}oauth/{name}"

    @property
    def home(self) -> str:
        """The app's root path as the browser sees it."""
        return self._requests_prefix

    # -- sessions ----------------------------------------------------------------

    def csrf_token(self, record: SessionRecord) -> str:
        """The logout CSRF token of a session (a keyed digest of its id)."""
        return hmac.new(self._secret, b"csrf\0" + record.sid.encode(), hashlib.sha256).hexdigest()

    def current_session(self) -> SessionRecord | None:
        """The session of the current request (resolved once by the guard)."""
        found: SessionRecord | None = flask.g.get("dash_oauth_session")
        return found

    def sweep(self) -> int:
        """End every session past its idle timeout or lifetime now; return the count."""
        with use_settings(self.telemetry):
            return self.lifecycle.sweep()

    def logout_url(self) -> str:
        """Where the logout form posts."""
        return self.url("logout")

    def login_url(self, next_path: str | None = None) -> str:
        """The sign-in URL, optionally returning to ``next_path``."""
        if not next_path:
            return self.url("login")
        return f"{self.url('login')}?{urlencode({'next': next_path})}"

    # Components for layouts (see :mod:`dash_oauth_otel.adapter.layout`).
    def logout_button(self, label: str = "Log out", **kwargs: Any) -> Any:
        """A logout button (a POST form with the session's CSRF token)."""
        return layout.logout_button(self, label, **kwargs)

    def login_button(self, label: str = "Sign in", **kwargs: Any) -> Any:
        """A sign-in link styled as a button."""
        return layout.login_button(self, label, **kwargs)


def _forbidden(exc: PermissionDeniedError) -> flask.Response:
    response = flask.jsonify({"error": exc.error, "message": exc.message})
    response.status_code = 403
    return response


def default_store(client: OAuthClient) -> DiskcacheStore:
    """The store of a module given none: a directory and namespace of this client's own.

    ``<default_directory()>/<client.namespace>``, named after a digest of the
    issuer, the client id and the redirect URI, so two apps on one host never
    share records (nor break each other's database), while the processes of one
    app all find the same directory.
    """
    namespace = client.namespace
    return DiskcacheStore(default_directory() / namespace, namespace=namespace)
