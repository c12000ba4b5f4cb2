"""The few HTML pages the module serves itself: sign-in, signed-out, end-session, error, step.

Every value is HTML-escaped; pages carry ``Referrer-Policy: no-referrer`` and
``Cache-Control: no-store`` and remove OAuth parameters from the address bar.
"""

from __future__ import annotations

from html import escape

from flask import Response as FlaskResponse
from werkzeug.wrappers import Response

__all__ = [
    "end_session_page",
    "error_page",
    "login_page",
    "no_store",
    "signed_out_page",
    "step_page",
    "waiting_page",
]

SIGNED_OUT_MESSAGE = "signed_out"
"""What the module's pages post on the app's ``BroadcastChannel`` after a sign-out."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;display:flex;min-height:100vh;"
    "align-items:center;justify-content:center;background:#f5f6f8;color:#1d2433}"
    "main{background:#fff;padding:2rem 2.5rem;border-radius:10px;max-width:32rem;"
    "box-shadow:0 2px 12px rgba(0,0,0,.08)}h1{font-size:1.3rem;margin-top:0}"
    "a.button,button{display:inline-block;background:#2f5bea;color:#fff;border:0;"
    "padding:.6rem 1.2rem;border-radius:6px;text-decoration:none;font-size:1rem;cursor:pointer}"
    "code{background:#eef0f4;padding:.1rem .3rem;border-radius:4px}.muted{color:#5b6478}"
)


def no_store(response: Response) -> Response:
    """Mark ``response`` as never cached and never leaking a referrer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page(
    title: str, body: str, *, clean_path: str | None, status: int, refresh: str = ""
) -> Response:
    script = refresh
    if clean_path is not None:
        # The URL left in the address bar must not hold code, state, iss or a handle.
        script = f"<script>history.replaceState(null,'',{_js_string(clean_path)});</script>"
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=referrer content=no-referrer><link rel=icon href="data:,">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style>{script}</head>"
        f"<body><main>{body}</main></body></html>"
    )
    return no_store(FlaskResponse(html, status=status, mimetype="text/html"))


def _js_string(value: str) -> str:
    out = value.replace("\\", "\\\\").replace("'", "\\'").replace("<", "\\x3c")
    return f"'{out}'"


def login_page(login_url: str, *, app_title: str = "Sign in") -> Response:
    """The page shown to a browser without a session when auto-redirect is off."""
    body = (
        f"<h1>{escape(app_title)}</h1><p class=muted>You need to sign in to use this app.</p>"
        f'<p><a class=button id=dash-oauth-login href="{escape(login_url)}">Sign in</a></p>'
    )
    return _page(app_title, body, clean_path=None, status=401)


def error_page(
    *,
    error: str,
    description: str,
    trace_id: str | None,
    retry_url: str,
    clean_path: str,
    status: int = 400,
    title: str = "Sign-in failed",
    retry_after: int | None = None,
) -> Response:
    """The page shown when a login (or the store) fails; names the error and the trace id.

    :param retry_after: Seconds after which the page follows its retry link by
        itself (also sent as ``Retry-After``).
    """
    trace = (
        f"<p class=muted>Trace id <code id=dash-oauth-trace>{escape(trace_id)}</code></p>"
        if trace_id
        else ""
    )
    body = (
        f"<h1>{escape(title)}</h1>"
        f"<p>Error <code id=dash-oauth-error>{escape(error)}</code></p>"
        f"<p id=dash-oauth-error-description>{escape(description)}</p>{trace}"
        f'<p><a class=button id=dash-oauth-retry href="{escape(retry_url)}">Try again</a></p>'
    )
    if retry_after is None:
        return _page(title, body, clean_path=clean_path, status=status)
    refresh = f'<meta http-equiv=refresh content="{retry_after};url={escape(retry_url)}">'
    page = _page(title, body, clean_path=clean_path, status=status, refresh=refresh)
    page.headers["Retry-After"] = str(retry_after)
    return page


def step_page(target: str, *, clean_path: str, title: str = "Signing you in") -> Response:
    """A same-origin step: the browser itself requests ``target``.

    A navigation started by this page is same-site, so ``SameSite=Strict``
    cookies are sent with it (they are not on the provider's cross-site redirect).
    """
    body = (
        f"<h1>{escape(title)}…</h1>"
        f'<p class=muted><a href="{escape(target)}" id=dash-oauth-continue>Continue</a></p>'
        f"<script>location.replace({_js_string(target)});</script>"
    )
    return _page(title, body, clean_path=clean_path, status=200)


def waiting_page(*, status_url: str, complete_url: str, clean_path: str) -> Response:
    """The "signing you in" page: polls the login's progress, then opens ``complete_url``."""
    script = (
        "<script>(function(){var s="
        + _js_string(status_url)
        + ",c="
        + _js_string(complete_url)
        + ";function poll(){fetch(s,{credentials:'same-origin',cache:'no-store'})"
        ".then(function(r){return r.json();}).then(function(b){"
        "if(b.login==='pending'){setTimeout(poll,400);}else{location.replace(c);}})"
        ".catch(function(){setTimeout(poll,1000);});}poll();})();</script>"
    )
    body = (
        "<h1>Signing you in…</h1><p class=muted id=dash-oauth-waiting>"
        "Checking your sign-in with the provider.</p>"
        f'<p class=muted><a href="{escape(complete_url)}" id=dash-oauth-continue>Continue</a></p>'
        f"{script}"
    )
    return _page("Signing you in", body, clean_path=clean_path, status=200)


def _broadcast(channel: str) -> str:
    """A script telling the app's other tabs of this browser that it signed out."""
    return (
        "<script>try{var c=new BroadcastChannel("
        + _js_string(channel)
        + ");c.postMessage("
        + _js_string(SIGNED_OUT_MESSAGE)
        + ");c.close();}catch(e){}</script>"
    )


def signed_out_page(
    login_url: str, *, channel: str, clean_path: str | None = None, status: int = 200
) -> Response:
    """The "You signed out" page: a sign-in button, and word to the app's other tabs.

    :param login_url: Where "Sign in" goes (the module's login route).
    :param channel: The app's ``BroadcastChannel`` name.
    :param clean_path: The URL to leave in the address bar, if not the requested one.
    :param status: 200 at the signed-out route, 401 when it answers a page of the app.
    """
    body = (
        "<h1 id=dash-oauth-signed-out>You signed out</h1>"
        "<p class=muted>You are no longer signed in to this app in this browser.</p>"
        f'<p><a class=button id=dash-oauth-login href="{escape(login_url)}">Sign in</a></p>'
        f"{_broadcast(channel)}"
    )
    return _page("Signed out", body, clean_path=clean_path, status=status)


def end_session_page(action: str, fields: dict[str, str], *, channel: str) -> Response:
    """An auto-submitted POST to the provider's end-session endpoint.

    OpenID RP-Initiated Logout 1.0 §2 lets the relying party POST its request,
    so the ID token given as ``id_token_hint`` never appears in a URL (nor in
    the history, logs or a ``Referer``).  The button is there for browsers
    without JavaScript.
    """
    inputs = "".join(
        f'<input type=hidden name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    body = (
        "<h1>Signing you out…</h1>"
        "<p class=muted>Ending your session at the sign-in provider.</p>"
        f'<form id=dash-oauth-end-session method=post action="{escape(action)}">{inputs}'
        "<button type=submit id=dash-oauth-end-session-continue>Continue</button></form>"
        f"{_broadcast(channel)}"
        "<script>document.getElementById('dash-oauth-end-session').submit();</script>"
    )
    return _page("Signing you out", body, clean_path=None, status=200)
