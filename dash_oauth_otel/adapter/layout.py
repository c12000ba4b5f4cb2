"""What the module adds to the app's layout, and the components it offers.

Injected into every layout of an app the module is attached to (a Dash layout
hook, so layouts set before or after the module are covered):

* ``dcc.Location(refresh=True)``: the target of the guard's ``sideUpdate`` when
  a callback arrives without a session;
* ``dcc.Store``: the non-secret session state (user claims, expiry, CSRF
  token for the logout form) for the app's own callbacks;
* ``dcc.Interval``: checks in while a page is open, which refreshes the token
  when due and notices an ended session;
* a listener (a clientside callback on the app): when another tab of the
  browser signs out, it posts on the app's ``BroadcastChannel`` and this page
  goes to the signed-out page at once (the check-in would within one interval).

Dash Pages registered with ``groups=[...]`` show their layout only to users
in one of those groups.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING
from typing import Any

import dash
import flask
from dash import ALL
from dash import Input
from dash import Output
from dash import dcc
from dash import hooks
from dash import html

from dash_oauth_otel.adapter.extension import get_module
from dash_oauth_otel.adapter.pages import SIGNED_OUT_MESSAGE
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.adapter.signout import channel_name

if TYPE_CHECKING:
    from dash_oauth_otel.adapter.module import DashOAuth

__all__ = [
    "CSRF_INPUT_TYPE",
    "INTERVAL_ID",
    "LOCATION_ID",
    "SIGNOUT_LISTENER_ID",
    "STORE_ID",
    "login_button",
    "logout_button",
    "protect_pages",
    "public_state",
    "register",
    "user_claims",
]

LOCATION_ID = "_dash_oauth_location"
STORE_ID = "_dash_oauth_state"
INTERVAL_ID = "_dash_oauth_interval"
SIGNOUT_LISTENER_ID = "_dash_oauth_signout"
CSRF_INPUT_TYPE = "_dash_oauth_csrf"
_PUBLIC_CLAIMS = (
    "sub",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "email_verified",
    "picture",
    "locale",
)
_hook_lock = threading.Lock()
_hook_installed = False


def user_claims(module: DashOAuth, record: SessionRecord) -> dict[str, Any]:
    """The user's non-secret claims, with the configured groups claim as ``groups``."""
    claims = record.token.claims
    out = {k: claims[k] for k in _PUBLIC_CLAIMS if k in claims}
    groups = claims.get(module.options.groups_claim)
    if isinstance(groups, str):
        groups = [groups]
    out["groups"] = [str(g) for g in groups] if isinstance(groups, list) else []
    return out


def public_state(
    module: DashOAuth, record: SessionRecord | None, *, error: str | None = None
) -> dict[str, Any]:
    """The state a page may see: never a token, never the session id."""
    if record is None:
        return {"authenticated": False, "error": error, "login_url": module.url("login")}
    expires_at = record.token.expires_at
    return {
        "authenticated": True,
        "stale": record.stale,
        "error": record.error,
        "user": user_claims(module, record),
        "expires_in": None if expires_at is None else max(0, int(expires_at - time.time())),
        "csrf_token": module.csrf_token(record),
        "logout_url": module.logout_url(),
    }


def _extras(module: DashOAuth) -> list[Any]:
    record: SessionRecord | None = flask.g.get("dash_oauth_session")
    extras: list[Any] = [
        dcc.Location(id=LOCATION_ID, refresh=True),
        dcc.Store(id=STORE_ID, data=public_state(module, record)),
        dcc.Store(id=SIGNOUT_LISTENER_ID),
    ]
    interval = module.options.refresh_interval_seconds
    if interval > 0:
        extras.append(dcc.Interval(id=INTERVAL_ID, interval=int(interval * 1000)))
    return extras


def _inject(layout: Any) -> Any:
    try:
        module = get_module()
    except RuntimeError:  # no application context
        return layout
    if module is None:
        return layout
    items = list(layout) if isinstance(layout, (list, tuple)) else [layout]
    return [*items, *_extras(module)]


def register(module: DashOAuth, app: dash.Dash) -> None:
    """Install the layout hook (once per process) and the module's callbacks on ``app``."""
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            hooks.layout(priority=1)(_inject)
            _hook_installed = True
    from dash_oauth_otel.adapter.background import install

    install()
    if module.options.refresh_interval_seconds > 0:
        app.callback(
            Output(STORE_ID, "data"),
            Input(INTERVAL_ID, "n_intervals"),
            prevent_initial_call=True,
        )(lambda _n: public_state(module, flask.g.get("dash_oauth_session")))
    app.clientside_callback(  # type: ignore[no-untyped-call]
        "function(state, ids) { var t = (state && state.csrf_token) || '';"
        " return ids.map(function() { return t; }); }",
        Output({"type": CSRF_INPUT_TYPE, "index": ALL}, "value"),
        Input(STORE_ID, "data"),
        Input({"type": CSRF_INPUT_TYPE, "index": ALL}, "id"),
    )
    app.clientside_callback(  # type: ignore[no-untyped-call]
        _signout_listener(module),
        Output(SIGNOUT_LISTENER_ID, "data"),
        Input(STORE_ID, "data"),
    )
    protect_pages()


def _signout_listener(module: DashOAuth) -> str:
    """The page's listener on the app's sign-out channel (JavaScript, run by Dash).

    It subscribes once per page; a message makes a signed-in page replace itself
    with the signed-out page, whose "Sign in" returns to where the tab was.
    """
    channel = _js(channel_name(module))
    message = _js(SIGNED_OUT_MESSAGE)
    target = _js(module.url("signed-out") + "?next=")
    return (
        "function(state) { var w = window;"
        " w._dashOAuthSignedIn = !!(state && state.authenticated);"
        " if (!w._dashOAuthChannel && w.BroadcastChannel) {"
        f"  var c = new BroadcastChannel({channel});"
        "  c.onmessage = function(e) {"
        f"   if (e.data === {message} && w._dashOAuthSignedIn) {{"
        "    w._dashOAuthSignedIn = false;"
        f"    location.replace({target} +"
        " encodeURIComponent(location.pathname + location.search)); } };"
        "  w._dashOAuthChannel = c; }"
        " return w.dash_clientside.no_update; }"
    )


def _js(value: str) -> str:
    # Dash inlines clientside functions in a <script>: no "<" may close it.
    return json.dumps(value).replace("<", "\\u003c")


_button_count = 0


def logout_button(module: DashOAuth, label: str, **kwargs: Any) -> html.Form:
    """A logout control: a POST form carrying the session's CSRF token."""
    global _button_count
    _button_count += 1
    class_name = " ".join(filter(None, ["dash-oauth-logout", kwargs.pop("className", "")]))
    return html.Form(
        [
            dcc.Input(
                id={"type": CSRF_INPUT_TYPE, "index": _button_count},
                type="hidden",
                name="csrf_token",
                value="",
            ),
            html.Button(
                label,
                type="submit",
                className=class_name,
                **kwargs,
            ),
        ],
        method="POST",
        action=module.logout_url(),
        style={"display": "inline"},
    )


def login_button(module: DashOAuth, label: str, **kwargs: Any) -> html.A:
    """A sign-in link (for pages that are public)."""
    class_name = " ".join(filter(None, ["dash-oauth-login", kwargs.pop("className", "")]))
    return html.A(label, href=module.url("login"), className=class_name, **kwargs)


def _forbidden(groups: list[str]) -> html.Div:
    return html.Div(
        [html.H2("Not allowed"), html.P("Your account is not in a group that may see this page.")],
        className="dash-oauth-forbidden",
        title="Needs one of the groups: " + ", ".join(groups),
    )


_pages_seen = 0  # pages of ``dash.page_registry`` already looked at


def protect_pages() -> None:
    """Wrap the layout of every Dash page registered with ``groups=[...]``, once.

    Dash keeps one page registry per process, shared by its apps: the wrapper
    asks the module of the app rendering the page (none: the page is refused),
    so it holds for every app alike.  Only pages registered since the last call
    are looked at; a request that finds none new costs a length comparison.
    """
    global _pages_seen
    registry = dash.page_registry
    if len(registry) == _pages_seen:
        return
    with _hook_lock:
        for page in list(registry.values()):
            groups = page.get("groups")
            if groups and not page.get("_dash_oauth_wrapped"):
                page["layout"] = _guarded_layout(page["layout"], list(groups))
                page["_dash_oauth_wrapped"] = True
        _pages_seen = len(registry)


def _guarded_layout(original: Any, groups: list[str]) -> Any:
    def layout(**kwargs: Any) -> Any:
        module = get_module()
        record = module.current_session() if module is not None else None
        if (
            module is None
            or record is None
            or not set(user_claims(module, record)["groups"]) & set(groups)
        ):
            return _forbidden(groups)
        return original(**kwargs) if callable(original) else original

    return layout
