"""Requests to the token endpoint and the endpoints that share its client auth.

RFC 6749 §2.3.1 (client password), §4.1.3 (code exchange), §5.1 (successful
response), §5.2 (error response), §6 (refresh); RFC 7009, RFC 7662 and
RFC 9126 use the same client authentication.

Code exchange and refresh are never retried: both credentials are single-use.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.http import HttpResponse
from dash_oauth_otel.errors import HTTPError
from dash_oauth_otel.errors import TokenEndpointError
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry.redact import digest

__all__ = [
    "TokenResponse",
    "authenticated_post",
    "client_auth",
    "parse_token_response",
    "raise_for_error",
    "safe_oauth_error",
]

_OAUTH_ERROR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _form_encode(value: str) -> str:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    return quote(value, safe="").replace("%20", "+")


def client_auth(client: OAuthClient, form: dict[str, str]) -> dict[str, str]:
    """Add client authentication to ``form``; return the headers to send."""
    headers = {"Accept": "application/json", **client.provider.extra_token_headers}
    if client.auth_style == "client_secret_basic":
        assert client.client_secret is not None  # noqa: S101 - checked at construction
        pair = f"{_form_encode(client.client_id)}:{_form_encode(client.client_secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    elif client.auth_style == "client_secret_post":
        assert client.client_secret is not None  # noqa: S101
        form["client_id"] = client.client_id
        form["client_secret"] = client.client_secret
    else:
        form["client_id"] = client.client_id
    return headers


def authenticated_post(
    client: OAuthClient,
    url: str,
    form: Mapping[str, str],
    *,
    span_name: str,
    phase: str,
    what: str,
) -> HttpResponse:
    """POST ``form`` to ``url`` with the client's authentication (never retried)."""
    body = dict(form)
    headers = client_auth(client, body)
    return client.provider.client.request(
        "POST", url, span_name=span_name, phase=phase, what=what, headers=headers, data=body
    )


def safe_oauth_error(value: object) -> str | None:
    """Return an RFC 6749 ``error`` code if it is a plain short token, else ``None``."""
    if isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _OAUTH_ERROR_CHARS:
        return value
    return None


def raise_for_error(
    client: OAuthClient,
    response: HttpResponse,
    *,
    phase: str,
    what: str,
    error_class: type[HTTPError] = TokenEndpointError,
) -> None:
    """Raise ``error_class`` for a non-2xx answer, with an audit event.

    Only the status, the RFC 6749 §5.2 ``error`` code and a digest of the body
    are kept; the body itself is never echoed.
    """
    if response.ok:
        return
    oauth_error = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        oauth_error = safe_oauth_error(parse_json_object(response.content).get("error"))
    audit.emit(
        audit.HTTP_ERROR,
        **client.audit_fields(),
        phase=phase,
        status=f"http_{response.status}",
        oauth_error=oauth_error,
        body_digest=digest(response.content),
    )
    detail = f" ({oauth_error})" if oauth_error else ""
    raise error_class(
        f"The {what} refused the request: HTTP {response.status}{detail}.",
        status=response.status,
        oauth_error=oauth_error,
        phase=phase,
        reason=oauth_error or f"http_{response.status}",
    )


@dataclass(frozen=True)
class TokenResponse:
    """A parsed RFC 6749 §5.1 response."""

    access_token: str
    token_type: str
    expires_at: float | None
    refresh_token: str | None
    id_token: str | None
    scope: tuple[str, ...] | None
    expires_in_present: bool


def parse_token_response(
    response: HttpResponse, *, phase: str, now: float | None = None
) -> TokenResponse:
    """Parse and type-check a successful token response.

    :raises TokenEndpointError: When the body is not a strict JSON object or a
        member has the wrong type (reason ``invalid_token_response``).
    """

    def bad(why: str) -> TokenEndpointError:
        return TokenEndpointError(
            f"The token endpoint answered with an unusable response: {why}.",
            status=response.status,
            phase=phase,
            reason="invalid_token_response",
        )

    try:
        data: dict[str, Any] = parse_json_object(response.content)
    except (ValueError, UnicodeDecodeError):
        raise bad("not a JSON object (duplicate members are refused)") from None
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise bad("access_token missing")
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or not token_type:
        raise bad("token_type missing")
    if token_type.lower() != "bearer":
        raise bad(f"token_type {token_type[:32]!r} is not Bearer")
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_in = int(expires_in)
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in < 0
    ):
        raise bad("expires_in is not a non-negative number")
    refresh = data.get("refresh_token")
    id_token = data.get("id_token")
    scope = data.get("scope")
    for name, value in (("refresh_token", refresh), ("id_token", id_token), ("scope", scope)):
        if value is not None and not isinstance(value, str):
            raise bad(f"{name} is not a string")
    now = time.time() if now is None else now
    return TokenResponse(
        access_token=access,
        token_type="Bearer",
        expires_at=None if expires_in is None else now + float(expires_in),
        refresh_token=refresh or None,
        id_token=id_token or None,
        scope=tuple(scope.split()) if isinstance(scope, str) else None,
        expires_in_present=expires_in is not None,
    )
