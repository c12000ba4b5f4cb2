"""Profile the module's hot paths with pyinstrument, in process.

Three paths, each driven through Flask's test client (so the profile holds the
app's work only, not a server's or a client's):

* ``guard``: an authenticated ``POST /_dash-update-component`` (the guard, then
  Dash's callback dispatch), next to the same request on the app without auth;
* ``login``: ``GET /oauth/login`` (state sealing, PAR to the provider);
* ``callback``: ``GET /oauth/callback`` (state check, token exchange, ID token
  validation, userinfo, session creation).

The provider's login pages are walked with httpx between the app's two
requests; the profiler runs only while the app handles a request.

Writes ``<out>/profile-<path>.txt``; returns a summary dict (wall
time per request with and without the profiler, and each listed function's
share of the profiled time).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

from benchmarks import apps
from benchmarks.infra import ROOT
from benchmarks.infra import SECRET
from benchmarks.loadgen import provider_form

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_INTERVAL = 0.0001

# Functions whose share of the guard's time the summary reports.
GUARD_FRAMES = {
    "guard (check)": "check  dash_oauth_otel/adapter/guard.py",
    "Lifecycle.resolve": "Lifecycle.resolve",
    "SessionManager.load": "SessionManager.load",
    "store get": "Store.get",
    "Sealer.unseal": "Sealer.unseal",
    "parse_json_object": "parse_json_object",
    "SessionRecord.from_json": "SessionRecord.from_json",
    "CookiePolicy.session_id": "CookiePolicy.session_id",
    "background _capture": "_capture",
}


def _walk_provider(http: httpx.Client, url: str, username: str = "alice") -> str:
    """Walk the provider's pages from ``url``; return the redirect back to the app."""
    issuer = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    method, data = "GET", None
    for _ in range(20):
        response = http.request(method, url, data=data)
        if response.is_redirect:
            target = str(response.url.join(response.headers["location"]))
            if not target.startswith(issuer):
                return target
            method, url, data = "GET", target, None
            continue
        found = provider_form(response.text)
        if found is None:
            raise RuntimeError(f"provider page without a form: {response.status_code}")
        action, method, fields = found
        if fields.get("prompt") == "login":
            fields |= {"login": username, "password": "any-password"}
        url, data, method = str(response.url.join(action)), fields, method.upper()
    raise RuntimeError("no way out of the provider")


def _shares(text: str, frames: dict[str, str]) -> dict[str, float]:
    """Each frame's time (summed over its occurrences, outermost only) from pyinstrument text."""
    total = None
    out: dict[str, float] = {}
    for label, needle in frames.items():
        seconds = 0.0
        depth_seen: int | None = None
        for line in text.splitlines():
            match = re.search(r"(\d+\.\d+)\s+(.*)$", line)
            if not match:
                continue
            if total is None:
                total = float(match.group(1))
            if needle in match.group(2):
                depth = len(line) - len(line.lstrip(" |`-"))
                if depth_seen is None or depth <= depth_seen:
                    depth_seen = depth
                    seconds += float(match.group(1))
        out[label] = seconds
    return out


def _write(session: Session, out: Path, name: str) -> str:
    text = ConsoleRenderer(unicode=False, color=False, show_all=False).render(session)
    (out / f"profile-{name}.txt").write_text(text)
    return text


def run(
    issuer: str,
    client_id: str,
    client_secret: str,
    origin: str,
    store_dir: Path,
    out: Path,
    *,
    requests: int = 3000,
    logins: int = 30,
) -> dict[str, Any]:
    env = {
        "BENCH_VARIANT": "module",
        "BENCH_ORIGIN": origin,
        "BENCH_ISSUER": issuer,
        "BENCH_CLIENT_ID": client_id,
        "BENCH_CLIENT_SECRET": client_secret,
        "BENCH_SECRET": SECRET,
        "BENCH_STORE": f"diskcache:{store_dir}",
    }
    app = apps.build(env)
    server = app.server
    noauth = apps.build({"BENCH_VARIANT": "noauth"}).server.test_client()
    summary: dict[str, Any] = {}

    # -- login and callback, profiled per request and combined ---------------------------
    login_sessions: list[Session] = []
    callback_sessions: list[Session] = []
    login_wall: list[float] = []
    callback_wall: list[float] = []
    client = server.test_client()
    sid = None
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        for i in range(logins + 2):
            client = server.test_client()  # a fresh browser
            http.cookies.clear()
            profiled = i >= 2  # the first two warm up discovery, JWKS, connections
            profiler = Profiler(interval=_INTERVAL)
            t = time.perf_counter()
            if profiled:
                profiler.start()
            start = client.get("/oauth/login?next=/")
            if profiled:
                login_sessions.append(profiler.stop())
            login_wall.append(time.perf_counter() - t)
            back = _walk_provider(http, start.headers["Location"])
            parts = urlsplit(back)
            profiler = Profiler(interval=_INTERVAL)
            t = time.perf_counter()
            if profiled:
                profiler.start()
            done = client.get(f"{parts.path}?{parts.query}")
            if profiled:
                callback_sessions.append(profiler.stop())
            callback_wall.append(time.perf_counter() - t)
            if done.status_code != 303:
                raise RuntimeError(f"callback answered {done.status_code}: {done.text[:300]}")
            sid = client.get_cookie("dash_oauth_session").value  # type: ignore[union-attr]
    for name, sessions, wall in (
        ("login", login_sessions, login_wall[2:]),
        ("callback", callback_sessions, callback_wall[2:]),
    ):
        combined = sessions[0]
        for more in sessions[1:]:
            combined = Session.combine(combined, more)
        text = _write(combined, out, name)
        summary[name] = {
            "requests": len(sessions),
            "ms_per_request_profiled": 1000 * sum(wall) / len(wall),
            "top": text,
        }

    # -- the guard ---------------------------------------------------------------------------
    body = apps.CALLBACK_BODY

    def post(c: Any, n: int) -> None:
        for _ in range(n):
            r = c.post("/_dash-update-component", data=body, content_type="application/json")
        if b"clicks=1" not in r.data:
            raise RuntimeError(f"callback not served: {r.data[:300]!r}")

    client = server.test_client()
    client.set_cookie("dash_oauth_session", sid or "")
    post(client, 300)
    post(noauth, 300)
    timings: dict[str, float] = {}
    for label, c in (
        ("noauth", noauth),
        ("module", client),
        ("noauth2", noauth),
        ("module2", client),
    ):
        t = time.perf_counter()
        post(c, requests)
        timings[label] = (time.perf_counter() - t) / requests
    profiler = Profiler(interval=_INTERVAL)
    profiler.start()
    post(client, requests)
    session = profiler.stop()
    text = _write(session, out, "guard")
    us_noauth = 1e6 * min(timings["noauth"], timings["noauth2"])
    us_module = 1e6 * min(timings["module"], timings["module2"])
    shares = _shares(text, GUARD_FRAMES)
    total = session.duration
    guard_total = shares.get("guard (check)") or total
    summary["guard"] = {
        "requests": requests,
        "us_per_request_noauth": us_noauth,
        "us_per_request_module": us_module,
        "guard_us_unprofiled": us_module - us_noauth,
        "profiled_s": total,
        "shares_of_guard": {k: v / guard_total for k, v in shares.items()},
        "steps_us": step_costs(server, sid or "", requests),
        "us_per_request_profiled": {k: 1e6 * v / requests for k, v in shares.items()},
        "top": text,
    }
    return summary


def step_costs(server: Any, sid: str, n: int) -> dict[str, float]:
    """Microseconds per call of each step of the guard, timed without a profiler.

    Reaches into the module's internals (a diagnostic: a step whose internals
    moved is skipped, not failed).
    """
    import json

    import flask

    from dash_oauth_otel.adapter import guard
    from dash_oauth_otel.adapter.sessions import SessionRecord
    from dash_oauth_otel.adapter.sessions import _key
    from dash_oauth_otel.core._json import parse_json_object

    module = server.extensions["dash_oauth_otel"]
    sessions = module.sessions
    out: dict[str, float] = {}

    def timed(label: str, call: Any) -> None:
        try:
            call()
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(n):
                    call()
                best = min(best, (time.perf_counter() - t) / n)
            out[label] = 1e6 * best
        except Exception as exc:
            out[label] = float("nan")
            print(f"step {label} skipped: {type(exc).__name__}: {exc}", file=sys.stderr)

    key = _key(sid)
    raw = sessions.store.get(key)
    record = sessions.load(sid)
    text = json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True)
    payload = json.loads(text)
    sealer = sessions._sealer
    timed("store.get (diskcache)", lambda: sessions.store.get(key))
    timed("Sealer.unseal (whole)", lambda: sealer.unseal(raw.decode("ascii")))
    timed("  of which parse_json_object (strict)", lambda: parse_json_object(text))
    timed("  json.loads (plain) on the same text", lambda: json.loads(text))
    timed("SessionRecord.from_json", lambda: SessionRecord.from_json(payload))
    timed("SessionManager.load (all of the above)", lambda: sessions.load(sid))
    timed("Lifecycle.resolve", lambda: module.lifecycle.resolve(sid))
    cookie = f"{module.cookies.session_name}={sid}"
    with server.test_request_context(
        "/_dash-update-component", method="POST", headers={"Cookie": cookie}
    ):
        timed("cookie parse (first read of request.cookies)", lambda: _fresh_cookies(flask))
        timed("guard.check (whole)", lambda: guard.check(module))
        from types import SimpleNamespace

        from dash_oauth_otel.adapter import background

        guard.check(module)  # leaves the session in flask.g, as for a callback
        timed(
            "custom_data hook (background._capture), a plain callback",
            lambda: background._capture(
                SimpleNamespace(cookies={}, headers={}, ignore_register_page=None)
            ),
        )
        timed(
            "custom_data hook (background._capture), a background callback",
            lambda: background._capture(
                SimpleNamespace(cookies={}, headers={}, ignore_register_page={"interval": 1})
            ),
        )
    return out


def _fresh_cookies(flask: Any) -> Any:
    request = flask.request._get_current_object()
    request.__dict__.pop("cookies", None)
    return request.cookies
