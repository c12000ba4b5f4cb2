"""Client-side OAuth steps for tests that need tokens from the test provider.

These do by hand what a relying party does (code exchange, refresh, ID token
signature check), so tests can get real tokens without the library.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.idp.harness import CONF_BASIC
from tests.idp.harness import LoginResult
from tests.idp.harness import RegisteredClient
from tests.idp.harness import TestProvider
from tests.idp.harness import jwt_header
from tests.idp.harness import login
from tests.idp.harness import pkce_pair


def token_request(
    idp: TestProvider, client: RegisteredClient, data: dict[str, str]
) -> httpx.Response:
    """POST ``data`` to the token endpoint, authenticating as ``client`` does."""
    auth: httpx.Auth | None = None
    if client.token_endpoint_auth_method == "client_secret_basic":
        assert client.client_secret is not None
        auth = httpx.BasicAuth(client.client_id, client.client_secret)
    elif client.token_endpoint_auth_method == "client_secret_post":
        data = {**data, "client_id": client.client_id, "client_secret": client.client_secret or ""}
    else:
        data = {**data, "client_id": client.client_id}
    if auth is None:
        return idp.http.post(idp.endpoint("token"), data=data)
    return idp.http.post(idp.endpoint("token"), data=data, auth=auth)


def exchange_code(
    idp: TestProvider, client: RegisteredClient, result: LoginResult, verifier: str | None
) -> httpx.Response:
    """Exchange the code of ``result`` (sent to ``result.action``) at the token endpoint."""
    data = {
        "grant_type": "authorization_code",
        "code": result.code or "",
        "redirect_uri": result.action,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return token_request(idp, client, data)


def refresh(idp: TestProvider, client: RegisteredClient, refresh_token: str) -> httpx.Response:
    """Use a refresh token at the token endpoint."""
    return token_request(
        idp, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def sign_in(
    idp: TestProvider,
    client: RegisteredClient = CONF_BASIC,
    *,
    username: str = "alice",
    http_client: httpx.Client | None = None,
    nonce: str = "nonce-1",
    **extra: str,
) -> dict[str, Any]:
    """Log in with PKCE at the client's first redirect URI; return the token response."""
    verifier, challenge = pkce_pair()
    url = idp.authorization_url(
        client.client_id,
        redirect_uri=client.redirect_uris[0],
        nonce=nonce,
        code_challenge=challenge,
        **extra,
    )
    result = login(url, username=username, http_client=http_client)
    assert result.code, result.params
    response = exchange_code(idp, client, result, verifier)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def published_keys(idp: TestProvider) -> list[dict[str, Any]]:
    """The keys the provider publishes now (its JWKS)."""
    response = idp.http.get(idp.metadata["jwks_uri"])
    response.raise_for_status()
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


def published_kids(idp: TestProvider) -> list[str]:
    """The ``kid`` of every published key, in JWKS order."""
    return [key["kid"] for key in published_keys(idp)]


def signature_valid(idp: TestProvider, token: str) -> bool:
    """Verify an RS256 JWT against the key of its ``kid`` in the provider's JWKS."""
    kid = jwt_header(token)["kid"]
    key = next(k for k in published_keys(idp) if k["kid"] == kid)
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(_b64(key["e"]), "big"), int.from_bytes(_b64(key["n"]), "big")
    ).public_key()
    signing_input, signature = token.rsplit(".", 1)
    try:
        public_key.verify(
            _b64(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return False
    return True


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}
