"""The userinfo endpoint.

OpenID Connect Core §5.3 — https://openid.net/specs/openid-connect-core-1_0.html#UserInfo

The response must be a JSON object whose ``sub`` matches the validated ID
token's ``sub`` (§5.3.2: otherwise it must not be used).  Signed or encrypted
userinfo responses are refused with a clear error rather than used unverified.
"""

from __future__ import annotations

import hmac
from typing import Any

from dash_oauth_otel.core._json import parse_json_object
from dash_oauth_otel.core.client import OAuthClient
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.errors import HTTPError
from dash_oauth_otel.errors import UserinfoError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import spans
from dash_oauth_otel.telemetry.correlation import trace_id_scope
from dash_oauth_otel.telemetry.redact import digest

__all__ = ["fetch_userinfo", "get_userinfo"]


def fetch_userinfo(
    client: OAuthClient, access_token: str, *, expected_sub: str | None
) -> dict[str, Any]:
    """Fetch userinfo with ``access_token`` and check its subject.

    :param expected_sub: The validated ID token's ``sub``; ``None`` for plain
        OAuth 2.0 providers, where the configured subject claim must be present.
    :raises UserinfoError: When the response is unusable or names another user.
    :raises HTTPError: When the endpoint answers with a non-2xx status.
    """
    provider = client.provider
    if provider.userinfo_endpoint is None:
        raise ConfigError(f"{provider.name} has no userinfo endpoint.")
    phase = "userinfo"
    with spans.span(
        spans.USERINFO, {**client.telemetry_attributes(), attr.OAUTH_PHASE: phase}
    ) as current:
        response = provider.client.request(
            "GET",
            provider.userinfo_endpoint,
            span_name=spans.USERINFO_HTTP,
            phase=phase,
            what=f"{provider.name} userinfo endpoint",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )

        def fail(status: str, message: str) -> UserinfoError:
            audit.emit(
                audit.AUDIT_USERINFO,
                **client.audit_fields(),
                status=status,
                http_status=response.status,
                body_digest=digest(response.content),
            )
            return UserinfoError(message, phase=phase, reason=status)

        if not response.ok:
            audit.emit(
                audit.AUDIT_USERINFO,
                **client.audit_fields(),
                status=f"http_{response.status}",
                http_status=response.status,
            )
            raise HTTPError(
                f"The {provider.name} userinfo endpoint answered HTTP {response.status}.",
                status=response.status,
                phase=phase,
                reason=f"http_{response.status}",
            )
        if response.content_type == "application/jwt":
            raise fail(
                "userinfo_jwt_unsupported",
                "The userinfo endpoint answered with a signed JWT, which this client does not "
                "accept; configure the provider to answer with JSON.",
            )
        try:
            info = parse_json_object(response.content)
        except (ValueError, UnicodeDecodeError):
            raise fail("parse_error", "The userinfo response is not a JSON object.") from None
        claim = provider.userinfo_subject_claim
        raw_sub = info.get(claim)
        if isinstance(raw_sub, int) and not isinstance(raw_sub, bool):
            raw_sub = str(raw_sub)
        if not isinstance(raw_sub, str) or not raw_sub:
            raise fail("userinfo_missing_sub", f"The userinfo response has no {claim!r}.")
        if expected_sub is not None and not hmac.compare_digest(
            raw_sub.encode(), expected_sub.encode()
        ):
            raise fail(
                "userinfo_sub_mismatch",
                "The userinfo response is about another user than the ID token.",
            )
        if claim != "sub":
            info.setdefault("sub", raw_sub)
        spans.set_attributes(current, {attr.OAUTH_USERINFO_SUBJECT_PRESENT: True})
        audit.emit(
            audit.AUDIT_USERINFO, **client.audit_fields(), status="ok", sub_digest=digest(raw_sub)
        )
        return info


def get_userinfo(client: OAuthClient, token: OAuthToken) -> dict[str, Any]:
    """Fetch userinfo for ``token``; its ``sub`` must match the token's subject."""
    expected = token.id_token_claims.get("sub") if token.id_token_claims else None
    with trace_id_scope():
        return fetch_userinfo(client, token.access_token, expected_sub=expected)
