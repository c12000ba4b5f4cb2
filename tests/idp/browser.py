"""A browser's part in the provider's flows, over plain HTTP.

:func:`login` drives the provider's development login page the way a browser
would (cookies in an :class:`httpx.Client`, redirects followed by hand) and
stops where the browser would leave the issuer, handing back the
authorization response exactly as the provider sent it to the client.
:func:`logout` does the same for RP-initiated logout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from typing import Any
from typing import Literal
from urllib.parse import parse_qsl
from urllib.parse import urljoin
from urllib.parse import urlsplit

import httpx


class LoginError(RuntimeError):
    """The provider answered the login flow with something other than a callback."""

    def __init__(self, message: str, *, status_code: int, body: str) -> None:
        super().__init__(f"{message} (HTTP {status_code}): {body[:800]}")
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True)
class LoginResult:
    """The authorization response as the provider sent it to the client.

    ``response_mode`` is ``"query"`` when the provider redirected the browser
    (``callback_url`` is then the full redirect URL, ``params`` its query) and
    ``"form_post"`` when it answered an auto-submitting form (``callback_url``
    is then the form's action, ``params`` its hidden fields).
    """

    response_mode: Literal["query", "form_post"]
    callback_url: str
    params: dict[str, str]

    @property
    def action(self) -> str:
        """Where the response goes: the form action, or the redirect URL without its query."""
        return self.callback_url.split("?", 1)[0]

    @property
    def fields(self) -> dict[str, str]:
        """The response parameters (the hidden form fields in form_post mode)."""
        return self.params

    @property
    def code(self) -> str | None:
        """The authorization code, if any."""
        return self.params.get("code")

    @property
    def state(self) -> str | None:
        """The ``state`` echoed back, if any."""
        return self.params.get("state")

    @property
    def iss(self) -> str | None:
        """The RFC 9207 ``iss`` parameter, if any."""
        return self.params.get("iss")

    @property
    def error(self) -> str | None:
        """The OAuth ``error`` code when the provider refused the request."""
        return self.params.get("error")

    def deliver(self, http_client: httpx.Client) -> httpx.Response:
        """Send the response on to the client as a browser would (redirects not followed)."""
        if self.response_mode == "form_post":
            return http_client.post(self.callback_url, data=self.params)
        return http_client.get(self.callback_url)


@dataclass(frozen=True)
class LogoutResult:
    """Where RP-initiated logout sent the browser: ``redirect_url`` is None if nowhere."""

    redirect_url: str | None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class _Form:
    action: str
    method: str
    id: str | None
    inputs: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collect the forms of a page with their named input values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(
                action=attributes.get("action", ""),
                method=attributes.get("method", "get").lower(),
                id=attributes.get("id"),
            )
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            self._current.inputs[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(html: str) -> list[_Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def pkce_pair() -> tuple[str, str]:
    """Return a fresh PKCE ``(code_verifier, S256 code_challenge)`` pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64decode_json(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return value


def jwt_header(token: str) -> dict[str, Any]:
    """Decode a compact JWT's header without verifying anything."""
    return _b64decode_json(token.split(".")[0])


def jwt_payload(token: str) -> dict[str, Any]:
    """Decode a compact JWT's payload without verifying anything."""
    return _b64decode_json(token.split(".")[1])


def _browse(
    http_client: httpx.Client,
    url: str,
    *,
    max_steps: int,
    fill: dict[str, dict[str, str]],
    form: dict[str, str] | None = None,
) -> httpx.Response | str:
    """Follow redirects and submit provider forms until the browser would leave the issuer.

    ``fill`` maps a form's ``prompt`` input (or its ``id``) to the extra fields
    to submit with it; ``form`` makes the first request a POST of these fields.
    Returns the URL outside the issuer that a redirect points at, or the last
    response from the issuer (a page without a known form).
    """
    origin = _origin(url)
    method, data = ("POST", form) if form is not None else ("GET", None)
    for _ in range(max_steps):
        response = http_client.request(method, url, data=data, follow_redirects=False)
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if _origin(location) != origin:
                return location
            method, url, data = "GET", location, None
            continue
        if response.status_code != 200:
            return response
        form = next((f for f in _forms(response.text) if _form_key(f) in fill), None)
        if form is None:
            return response
        method = form.method.upper()
        url = urljoin(str(response.url), form.action)
        data = {**form.inputs, **fill[_form_key(form)]}
    raise RuntimeError(f"no way out of the provider after {max_steps} steps (last URL {url})")


def _form_key(form: _Form) -> str:
    return form.inputs.get("prompt") or form.id or ""


def login(
    authorization_url: str,
    *,
    username: str = "alice",
    password: str = "any-password",  # noqa: S107
    http_client: httpx.Client | None = None,
    max_steps: int = 20,
) -> LoginResult:
    """Log in through the provider's dev pages and return the authorization response.

    ``authorization_url`` must be on the provider (e.g. the ``Location`` a
    relying party redirected to, or a PAR ``request_uri`` URL): the walk stops
    at the first redirect that leaves its origin. Any login name is accepted
    and becomes ``sub``; a consent page (only shown for ``prompt=consent``) is
    clicked through. Pass the same ``http_client`` (its cookie jar is the
    browser's) to log in again within the same provider session: the provider
    then skips the login page (single sign-on) unless the request asks for
    ``prompt=login``. Raises :class:`LoginError` if the provider ends on an
    error page (e.g. an unregistered ``redirect_uri``).
    """
    fill = {"login": {"login": username, "password": password}, "consent": {}}
    own_client = http_client is None
    client = http_client if http_client is not None else httpx.Client(timeout=15.0)
    try:
        outcome = _browse(client, authorization_url, max_steps=max_steps, fill=fill)
    finally:
        if own_client:
            client.close()
    if isinstance(outcome, str):
        return LoginResult("query", outcome, dict(parse_qsl(urlsplit(outcome).query)))
    if outcome.status_code == 200:
        issuer_origin = _origin(authorization_url)
        for form in _forms(outcome.text):
            action = urljoin(str(outcome.url), form.action)
            if form.method == "post" and _origin(action) != issuer_origin:
                return LoginResult("form_post", action, dict(form.inputs))
    raise LoginError(
        "the provider did not answer with a callback",
        status_code=outcome.status_code,
        body=outcome.text,
    )


def logout(
    end_session_url: str,
    *,
    http_client: httpx.Client,
    max_steps: int = 10,
    form: dict[str, str] | None = None,
) -> LogoutResult:
    """Follow RP-initiated logout, confirming the provider's "sign out?" page.

    With ``form``, the logout request is a POST of these fields to
    ``end_session_url`` (RP-Initiated Logout 1.0 allows GET or POST).
    """
    outcome = _browse(
        http_client,
        end_session_url,
        max_steps=max_steps,
        fill={"op.logoutForm": {"logout": "yes"}},
        form=form,
    )
    if isinstance(outcome, str):
        return LogoutResult(outcome, dict(parse_qsl(urlsplit(outcome).query)))
    if outcome.status_code != 200:
        raise LoginError("logout failed", status_code=outcome.status_code, body=outcome.text)
    return LogoutResult(None)
