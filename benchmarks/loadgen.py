"""A Python load generator for full logins: virtual browsers on asyncio streams.

Each virtual user is a browser with its own cookie jar and connections: it
opens the app's login URL, follows the redirect to the provider, fills in the
provider's login form, follows the provider's redirect back to the app's
callback and stops at the app's final redirect.  Timings are kept per side (app
or provider), so the app's two requests (login start and callback) can be told
apart from the provider's.

The HTTP/1.1 client is a minimal one written on ``asyncio`` streams (keep-alive,
``Content-Length`` and chunked bodies, cookies by name): a general-purpose
client (httpx) spent about 1 ms of CPU per request, which on a 2-core machine
made the generator the largest consumer of CPU in the scale figure.

``provider_only`` runs the provider's part of the module's flow with the load
generator as the relying party (PAR, authorization, login form, token
exchange, userinfo): the provider's capacity with no app in the loop.

Run as a module (one JSON document on stdout)::

    python -m benchmarks.loadgen scale --start URL --users 200 --duration 15 --warmup 5
    python -m benchmarks.loadgen sequential --start URL --count 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input\b([^>]*)>", re.I)
_ATTR = re.compile(r"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(\"[^\"]*\"|'[^']*')")


def _attrs(text: str) -> dict[str, str]:
    return {k.lower(): html.unescape(v[1:-1]) for k, v in _ATTR.findall(text)}


def provider_form(page: str) -> tuple[str, str, dict[str, str]] | None:
    """The provider's login or consent form: (action, method, hidden fields)."""
    for head, body in _FORM.findall(page):
        attrs = _attrs(head)
        fields = {}
        for tag in _INPUT.findall(body):
            a = _attrs(tag)
            if a.get("type", "text").lower() == "hidden" and "name" in a:
                fields[a["name"]] = a.get("value", "")
        if fields.get("prompt") in ("login", "consent"):
            return attrs.get("action", ""), attrs.get("method", "get").lower(), fields
    return None


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# -- a minimal HTTP/1.1 client ---------------------------------------------------------------


class HTTPFailure(Exception):
    """A request failed at the transport level (or timed out)."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_list(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and self.header("location") is not None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _expired(attrs: list[str]) -> bool:
    for attr in attrs:
        a = attr.strip().lower()
        if a.startswith("max-age=") and a[8:].strip().lstrip("-").isdigit() and int(a[8:]) <= 0:
            return True
        if a.startswith("expires=") and "1970" in a:
            return True
    return False


class Browser:
    """One virtual browser: a cookie jar (by name, one host) and keep-alive connections."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.jar: dict[str, str] = {}
        self._pool: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    def clear(self) -> None:
        self.jar.clear()

    async def close(self) -> None:
        for _reader, writer in self._pool.values():
            writer.close()
        self._pool.clear()

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def apply_cookies(self, response: Response, jar: dict[str, str] | None = None) -> int:
        """Apply Set-Cookie headers to this browser's jar (and to ``jar``); return their size."""
        size = 0
        for header in response.header_list("set-cookie"):
            size += len(header)
            pair, *attrs = header.split(";")
            name, _, value = pair.strip().partition("=")
            for target in (self.jar, jar) if jar is not None else (self.jar,):
                if not value or _expired(attrs):
                    target.pop(name, None)
                else:
                    target[name] = value
        return size

    async def request(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        try:
            return await asyncio.wait_for(self._request(method, url, form, headers), self.timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            raise HTTPFailure(f"{method} {url}: {type(exc).__name__}: {exc}") from None

    async def _request(
        self, method: str, url: str, form: dict[str, str] | None, headers: dict[str, str] | None
    ) -> Response:
        parts = urlsplit(url)
        key = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {parts.netloc}",
            "User-Agent: dash-oauth-otel-bench",
            "Accept: text/html,application/xhtml+xml,*/*;q=0.8",
        ]
        if self.jar:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.jar.items()))
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            lines.append("Content-Type: application/x-www-form-urlencoded")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            reused = key in self._pool
            if not reused:
                self._pool[key] = await asyncio.open_connection(*key)
            reader, writer = self._pool[key]
            try:
                writer.write(payload)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError):
                self._drop(key)
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: retry once
                raise
            break
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            response_headers.append((name.strip().lower(), value.strip()))
        response = Response(status, response_headers, b"", url)
        length = response.header("content-length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif length is not None:
            data = await reader.readexactly(int(length))
        elif (response.header("transfer-encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(chunks)
        else:
            data = await reader.read()
            self._drop(key)
        response.body = data
        if (response.header("connection") or "").lower() == "close":
            self._drop(key)
        return response

    def _drop(self, key: tuple[str, int]) -> None:
        found = self._pool.pop(key, None)
        if found is not None:
            found[1].close()


# -- flows -----------------------------------------------------------------------------


@dataclass
class LoginOutcome:
    ok: bool
    seconds: float
    app_seconds: float = 0.0
    provider_seconds: float = 0.0
    requests: int = 0
    error: str | None = None
    app_cookies: dict[str, str] = field(default_factory=dict)
    set_cookie_bytes: int = 0
    final_location: str | None = None


async def login(browser: Browser, start_url: str, *, username: str = "alice") -> LoginOutcome:
    """One full login from a fresh browser (its cookies are cleared first)."""
    browser.clear()
    app = origin(start_url)
    jar: dict[str, str] = {}
    out = LoginOutcome(ok=False, seconds=0.0)
    method, url, form = "GET", start_url, None
    t0 = time.perf_counter()
    delivered = False
    try:
        for _ in range(20):
            t = time.perf_counter()
            response = await browser.request(method, url, form=form)
            spent = time.perf_counter() - t
            out.requests += 1
            here = origin(url)
            if here == app:
                out.app_seconds += spent
                out.set_cookie_bytes += browser.apply_cookies(response, jar)
            else:
                out.provider_seconds += spent
                browser.apply_cookies(response)
            if delivered:  # the app's answer to the callback
                location = response.header("location")
                if response.status in (302, 303) and location and "error" not in location:
                    out.ok = True
                    out.final_location = location
                else:
                    out.error = f"callback answered {response.status}: {response.text[:200]}"
                break
            if response.is_redirect:
                target = urljoin(url, response.header("location") or "")
                if here != app and origin(target) == app:
                    delivered = True
                method, url, form = "GET", target, None
                continue
            if response.status == 200 and here != app:
                found = provider_form(response.text)
                if found is None:
                    out.error = f"no provider form at {url}"
                    break
                action, method, fields = found
                if fields.get("prompt") == "login":
                    fields |= {"login": username, "password": "any-password"}
                url, form, method = urljoin(url, action), fields, method.upper()
                continue
            out.error = f"{method} {url} answered {response.status}: {response.text[:200]}"
            break
        else:
            out.error = "too many steps"
    except HTTPFailure as exc:
        out.error = str(exc)
    out.seconds = time.perf_counter() - t0
    out.app_cookies = jar
    return out


@dataclass
class ProviderClient:
    """What the provider-only flow needs to act as the relying party."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    metadata: dict[str, Any]


async def provider_only(
    browser: Browser, rp: ProviderClient, *, username: str = "alice"
) -> LoginOutcome:
    """The provider's part of the module's default flow, the generator as relying party."""
    browser.clear()
    out = LoginOutcome(ok=False, seconds=0.0)
    basic = base64.b64encode(f"{rp.client_id}:{rp.client_secret}".encode()).decode()
    auth = {"Authorization": f"Basic {basic}"}
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    t0 = time.perf_counter()
    try:
        par = await browser.request(
            "POST",
            rp.metadata["pushed_authorization_request_endpoint"],
            headers=auth,
            form={
                "response_type": "code",
                "client_id": rp.client_id,
                "redirect_uri": rp.redirect_uri,
                "scope": "openid profile email groups",
                "state": secrets.token_urlsafe(16),
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        out.requests += 1
        if par.status != 201:
            out.error = f"PAR answered {par.status}"
            return out
        query = urlencode(
            {"client_id": rp.client_id, "request_uri": json.loads(par.body)["request_uri"]}
        )
        method, url, form = "GET", f"{rp.metadata['authorization_endpoint']}?{query}", None
        code = None
        for _ in range(20):
            response = await browser.request(method, url, form=form)
            browser.apply_cookies(response)
            out.requests += 1
            if response.is_redirect:
                target = urljoin(url, response.header("location") or "")
                if origin(target) != rp.issuer:
                    code = dict(parse_qsl(urlsplit(target).query)).get("code")
                    break
                method, url, form = "GET", target, None
                continue
            found = provider_form(response.text) if response.status == 200 else None
            if found is None:
                out.error = f"{method} {url} answered {response.status}"
                return out
            action, method, fields = found
            if fields.get("prompt") == "login":
                fields |= {"login": username, "password": "any-password"}
            url, form, method = urljoin(url, action), fields, method.upper()
        if code is None:
            out.error = "no code"
            return out
        browser.clear()  # the relying party's back channel carries no browser cookies
        token = await browser.request(
            "POST",
            rp.metadata["token_endpoint"],
            headers=auth,
            form={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": rp.redirect_uri,
                "code_verifier": verifier,
            },
        )
        out.requests += 1
        if token.status != 200:
            out.error = f"token endpoint answered {token.status}"
            return out
        access_token = json.loads(token.body)["access_token"]
        info = await browser.request(
            "GET",
            rp.metadata["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {access_token}"},
        )
        out.requests += 1
        if info.status != 200:
            out.error = f"userinfo answered {info.status}"
            return out
        out.ok = True
    except HTTPFailure as exc:
        out.error = str(exc)
    finally:
        out.seconds = time.perf_counter() - t0
        out.provider_seconds = out.seconds
    return out


async def sequential(start_url: str, count: int, *, username: str = "alice") -> list[LoginOutcome]:
    """``count`` logins one after the other, each from a fresh browser."""
    async with Browser() as browser:
        return [await login(browser, start_url, username=username) for _ in range(count)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def closed_loop(
    users: int,
    duration: float,
    warmup: float,
    one: Callable[..., Awaitable[LoginOutcome]],
) -> dict[str, Any]:
    """``users`` virtual users logging in back to back; measure the steady window.

    Users start spread over the first second.  Logins finishing inside
    ``[warmup, warmup + duration]`` count towards the rate and the latencies;
    errors count wherever they happen.  After the window no new login starts
    and the ones in flight are awaited (so none is cut off as an error).
    """
    loop_start = time.perf_counter()
    window_start = loop_start + warmup
    window_end = window_start + duration
    done: list[tuple[float, LoginOutcome]] = []
    errors: list[str] = []

    async def user(index: int) -> None:
        await asyncio.sleep(index / max(users, 1))
        async with Browser() as browser:
            while time.perf_counter() < window_end:
                outcome = await one(browser, username=f"user{index}")
                if outcome.ok:
                    done.append((time.perf_counter(), outcome))
                else:
                    errors.append(outcome.error or "unknown")

    cpu0 = time.process_time()
    await asyncio.gather(*(user(i) for i in range(users)))
    finished = time.perf_counter()
    in_window = [o for t, o in done if window_start <= t <= window_end]
    latencies = [o.seconds for o in in_window]
    return {
        "users": users,
        "duration": duration,
        "logins": len(in_window),
        "logins_per_s": len(in_window) / duration,
        "p50_s": percentile(latencies, 50),
        "p90_s": percentile(latencies, 90),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies) if latencies else float("nan"),
        "app_p50_s": percentile([o.app_seconds for o in in_window], 50),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "total_ok": len(done),
        "drain_s": finished - window_end,
        "generator_cpu_s": time.process_time() - cpu0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    scale = sub.add_parser("scale", help="closed-loop logins against an app")
    scale.add_argument("--start", help="the app's login URL")
    scale.add_argument("--provider-json", help="provider-only: JSON of ProviderClient fields")
    scale.add_argument("--users", type=int, required=True)
    scale.add_argument("--duration", type=float, required=True)
    scale.add_argument("--warmup", type=float, default=5.0)
    seq = sub.add_parser("sequential", help="sequential logins against an app")
    seq.add_argument("--start", required=True)
    seq.add_argument("--count", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "sequential":
        outcomes = asyncio.run(sequential(args.start, args.count))
        json.dump([o.__dict__ for o in outcomes], sys.stdout)
        return
    if args.provider_json:
        rp = ProviderClient(**json.loads(args.provider_json))

        async def one(browser: Browser, *, username: str) -> LoginOutcome:
            return await provider_only(browser, rp, username=username)
    else:
        start = args.start

        async def one(browser: Browser, *, username: str) -> LoginOutcome:
            return await login(browser, start, username=username)

    result = asyncio.run(closed_loop(args.users, args.duration, args.warmup, one))
    result["pid"] = os.getpid()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
