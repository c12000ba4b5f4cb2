"""The guard: every request of the app passes here before its view.

* module routes, Dash's JavaScript bundles and the favicon are public, as are
  the configured ``public_routes``;
* a request with a valid session goes on (its token refreshed when due);
* a page request without one is sent to sign in (or shown a sign-in page),
  unless the browser signed out: it then gets the signed-out page, and only
  its "Sign in" button starts a login;
* a Dash callback (``/_dash-update-component``) without one gets a JSON
  ``sideUpdate`` that points the injected ``dcc.Location`` at the sign-in URL
  (or the signed-out page): a 302 would be followed by ``fetch`` and break
  the page instead;
* anything else gets ``401``.

Every answer under the app's prefix depends on the session, so every one is
``Cache-Control: no-store`` (an ``after_request`` hook), except Dash's
JavaScript bundles, ``assets/`` and the favicon: a page the browser kept (in
its cache or its back/forward cache) would show signed-in content after logout.

The guard is the last ``before_request`` hook, whenever the others are
registered, so OpenTelemetry's Flask instrumentation still opens a server span
for denied requests.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any
from typing import SupportsIndex
from urllib.parse import urlencode

import flask
from werkzeug.wrappers import Response

from dash_oauth_otel.adapter.layout import LOCATION_ID
from dash_oauth_otel.adapter.layout import protect_pages
from dash_oauth_otel.adapter.pages import login_page
from dash_oauth_otel.adapter.pages import no_store
from dash_oauth_otel.adapter.signout import signed_out_response
from dash_oauth_otel.adapter.signout import signed_out_url
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry.correlation import set_context_attributes
from dash_oauth_otel.telemetry.correlation import set_trace_id
from dash_oauth_otel.telemetry.settings import activate

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = ["register"]

_PUBLIC_DASH_PREFIXES = ("_dash-component-suites/", "_favicon.ico", "_reload-hash")
_CACHEABLE_PREFIXES = ("_dash-component-suites/", "_favicon.ico", "assets/")
_CALLBACK_PATH = "_dash-update-component"


def register(module: DashOAuth, server: flask.Flask) -> None:
    """Install the guard on ``server``, kept after every other ``before_request`` hook.

    Hooks registered later (such as OpenTelemetry's Flask instrumentation, which
    opens the server span) go before the guard, so a request the guard answers
    is still traced.
    """

    def guard() -> Response | None:
        return check(module)

    def private(response: Response) -> Response:
        return mark_private(module, response)

    def teardown(_exc: BaseException | None) -> None:
        # The request's dash.* metadata and telemetry settings must not outlive
        # it on a reused thread.
        set_context_attributes(None)
        set_trace_id(None)
        activate(None)

    hooks = server.before_request_funcs.get(None, [])
    server.before_request_funcs[None] = _GuardLast(hooks, guard)
    server.after_request(private)
    server.teardown_request(teardown)


class _GuardLast(list[Callable[[], Any]]):
    """The app's ``before_request`` hooks, with the guard kept at the end.

    Flask appends a hook registered with ``@app.before_request``; OpenTelemetry's
    instrumentation inserts its hook at the front.  Whatever is added lands
    before the guard, at registration time, so requests pay nothing for it.
    """

    def __init__(self, hooks: list[Callable[[], Any]], guard: Callable[[], Any]) -> None:
        super().__init__(hook for hook in hooks if hook is not guard)
        super().append(guard)
        self._guard = guard

    def _end(self) -> int:
        return len(self) - 1 if self and self[-1] is self._guard else len(self)

    def append(self, hook: Callable[[], Any]) -> None:
        super().insert(self._end(), hook)

    def insert(self, index: SupportsIndex, hook: Callable[[], Any]) -> None:
        super().insert(min(operator.index(index), self._end()), hook)

    def extend(self, hooks: Iterable[Callable[[], Any]]) -> None:
        for hook in list(hooks):
            self.append(hook)

    def __iadd__(self, hooks: Iterable[Callable[[], Any]]) -> _GuardLast:  # type: ignore[override,misc]
        self.extend(hooks)
        return self


def _relative(module: DashOAuth, path: str) -> str | None:
    prefix = module.routes_prefix
    if not path.startswith(prefix):
        return None
    return path[len(prefix) :]


def _is_public(module: DashOAuth, relative: str) -> bool:
    if relative.startswith("oauth/") or relative.startswith(_PUBLIC_DASH_PREFIXES):
        return True
    if relative.startswith("assets/"):
        return True
    path = "/" + relative
    for route in module.options.public_routes:
        if route.endswith("/") and route != "/":
            if path.startswith(route):
                return True
        elif path == route:
            return True
    return False


def mark_private(module: DashOAuth, response: Response) -> Response:
    """Make every answer of the app ``no-store``, but for its static files."""
    relative = _relative(module, flask.request.path)
    if relative is not None and not relative.startswith(_CACHEABLE_PREFIXES):
        response.headers["Cache-Control"] = "no-store"
    return response


def check(module: DashOAuth) -> Response | None:
    """Let the request through (``None``) or answer it for an absent session."""
    request = flask.request
    relative = _relative(module, request.path)
    if relative is None:
        set_context_attributes(None)
        return None  # another app on the same server
    # Set on every request: a worker thread serves many requests in turn.
    activate(module.telemetry)
    set_context_attributes(
        {
            attr.DASH_MODULE_ID: module.module_id,
            attr.DASH_SESSION_IS_ASYNC: module.dispatcher is not None,
        }
    )
    set_trace_id(None)
    module.lifecycle.start_sweeper()
    protect_pages()
    if relative.startswith("oauth/"):
        return None
    # Sets the session digest into the context attributes when a session is found.
    outcome = module.lifecycle.resolve(module.cookies.session_id(request))
    g = flask.g._get_current_object()  # one context lookup for both writes
    g.dash_oauth_session = outcome.record
    g.dash_oauth_error = outcome.error
    if outcome.record is not None or _is_public(module, relative):
        return None
    next_path = _next_path(module, request, relative)
    login = _login_url(module, next_path, reauth=outcome.error == "reauth_required")
    signed_out = module.cookies.signed_out(request)
    if relative == _CALLBACK_PATH and request.method == "POST":
        # Dash callbacks use fetch: answer with a side update that navigates.
        target = signed_out_url(module, next_path) if signed_out else login
        body = {"multi": True, "response": {}, "sideUpdate": {LOCATION_ID: {"href": target}}}
        response = flask.jsonify(body)
        response.headers["Cache-Control"] = "no-store"
        return response
    if request.method == "GET" and _wants_html(request) and not relative.startswith("_dash"):
        if signed_out:
            return signed_out_response(module, next_path)
        if module.options.auto_redirect:
            return no_store(flask.redirect(login, code=302))
        return login_page(login)
    response = flask.jsonify({"error": "login_required", "login_url": login})
    response.status_code = 401
    return no_store(response)


def _wants_html(request: flask.Request) -> bool:
    # Fetch metadata tells a navigation from a sub-resource (an icon, an image):
    # only a navigation may start a login, never a background request.
    dest = request.headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest in ("document", "iframe")
    accept = request.accept_mimetypes
    return accept.accept_html


def _next_path(module: DashOAuth, request: flask.Request, relative: str) -> str:
    """Where to return after login: the page asked for, or for a callback the page it came from."""
    if relative == _CALLBACK_PATH:
        referer = request.headers.get("Referer", "")
        if referer.startswith(module.origin + "/"):
            return referer[len(module.origin) :]
        return module.home
    query = request.query_string.decode("latin-1")
    return module.home + relative + (f"?{query}" if query else "")


def _login_url(module: DashOAuth, next_path: str, *, reauth: bool) -> str:
    params = {"next": next_path}
    if reauth:
        params["reauth"] = "1"
    return f"{module.url('login')}?{urlencode(params)}"
