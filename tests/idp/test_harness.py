"""The test provider and its harness, exercised against the real Node provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from typing import ClassVar
from urllib.parse import parse_qsl
from urllib.parse import urlencode

import httpx
import pytest

from tests.idp.harness import CONF_BASIC
from tests.idp.harness import CONF_POST
from tests.idp.harness import DEFAULT_POST_LOGOUT_REDIRECT_URI
from tests.idp.harness import DEFAULT_REDIRECT_URI
from tests.idp.harness import PAR_REQUIRED
from tests.idp.harness import PUBLIC
from tests.idp.harness import LoginError
from tests.idp.harness import TestProvider
from tests.idp.harness import TestProviderError
from tests.idp.harness import jwt_header
from tests.idp.harness import jwt_payload
from tests.idp.harness import login
from tests.idp.harness import logout
from tests.idp.harness import pkce_pair
from tests.idp.tokens import bearer
from tests.idp.tokens import exchange_code
from tests.idp.tokens import refresh
from tests.idp.tokens import sign_in
from tests.idp.tokens import signature_valid

BASIC_AUTH = ("conf-basic", "conf-basic-secret")


def test_discovery_document(idp: TestProvider) -> None:
    meta = idp.discovery()
    assert idp.issuer == f"http://127.0.0.1:{idp.port}"
    assert meta["issuer"] == idp.issuer
    endpoints = ("authorization", "token", "userinfo", "end_session", "revocation",
                 "introspection", "registration", "pushed_authorization_request")  # fmt: skip
    for name in endpoints:
        assert meta[f"{name}_endpoint"].startswith(idp.issuer + "/"), name
    assert meta["jwks_uri"] == f"{idp.issuer}/jwks"
    assert "S256" in meta["code_challenge_methods_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert {"query", "form_post"} <= set(meta["response_modes_supported"])
    scopes = {"openid", "profile", "email", "offline_access", "groups"}
    assert scopes <= set(meta["scopes_supported"])
    assert meta["claims_parameter_supported"] is True
    assert {"authorization_code", "refresh_token"} <= set(meta["grant_types_supported"])


def test_login_page_loads_nothing_remote(idp: TestProvider, browser: httpx.Client) -> None:
    response = browser.get(idp.authorization_url("conf-basic"), follow_redirects=True)
    assert response.status_code == 200
    assert 'name="login"' in response.text
    assert "@import" not in response.text
    assert "googleapis" not in response.text


def test_code_flow_with_pkce(idp: TestProvider) -> None:
    verifier, challenge = pkce_pair()
    url = idp.authorization_url(
        "conf-basic", state="state-1", nonce="nonce-1", code_challenge=challenge
    )
    result = login(url)
    assert result.response_mode == "query"
    assert result.callback_url.startswith(DEFAULT_REDIRECT_URI + "?")
    assert result.state == "state-1"
    assert result.iss == idp.issuer
    assert result.code

    response = exchange_code(idp, CONF_BASIC, result, verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["id_token"]
    assert 3590 <= tokens["expires_in"] <= 3600

    claims = jwt_payload(tokens["id_token"])
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == "conf-basic"
    assert claims["sub"] == "alice"
    assert claims["nonce"] == "nonce-1"
    assert claims["groups"] == ["admins", "analysts"]
    assert claims["email"] == "alice@example.com"
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt_header(tokens["id_token"])["alg"] == "RS256"
    assert signature_valid(idp, tokens["id_token"])

    userinfo = idp.http.get(idp.endpoint("userinfo"), headers=bearer(tokens["access_token"]))
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == "alice"
    assert userinfo.json()["groups"] == ["admins", "analysts"]


def test_code_replay_and_wrong_verifier_are_refused(idp: TestProvider) -> None:
    verifier, challenge = pkce_pair()
    result = login(idp.authorization_url("conf-basic", code_challenge=challenge))
    assert exchange_code(idp, CONF_BASIC, result, "x" * 43).json()["error"] == "invalid_grant"
    result = login(idp.authorization_url("conf-basic", code_challenge=challenge))
    assert exchange_code(idp, CONF_BASIC, result, verifier).status_code == 200
    assert exchange_code(idp, CONF_BASIC, result, verifier).json()["error"] == "invalid_grant"


def test_other_client_auth_methods(idp: TestProvider) -> None:
    bob = jwt_payload(sign_in(idp, CONF_POST, username="bob")["id_token"])
    assert bob["groups"] == ["analysts"]
    carol = jwt_payload(sign_in(idp, PUBLIC, username="carol")["id_token"])
    assert carol["groups"] == []
    refused = login(idp.authorization_url("public"))  # public client without PKCE
    assert refused.error == "invalid_request"


def test_refresh_tokens_rotate_and_revocation_ends_the_grant(idp: TestProvider) -> None:
    tokens = sign_in(idp, scope="openid")  # no offline_access: refresh token all the same
    refreshed = refresh(idp, CONF_BASIC, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert jwt_payload(new["id_token"])["sub"] == "alice"

    introspection, revocation = idp.endpoint("introspection"), idp.endpoint("revocation")
    active = idp.http.post(introspection, auth=BASIC_AUTH, data={"token": new["access_token"]})
    assert active.json()["active"] is True
    revoked = idp.http.post(revocation, auth=BASIC_AUTH, data={"token": new["refresh_token"]})
    assert revoked.status_code == 200
    gone = idp.http.post(introspection, auth=BASIC_AUTH, data={"token": new["access_token"]})
    assert gone.json()["active"] is False


def test_reusing_a_rotated_refresh_token_revokes_the_grant(idp: TestProvider) -> None:
    tokens = sign_in(idp)
    new = refresh(idp, CONF_BASIC, tokens["refresh_token"]).json()
    assert refresh(idp, CONF_BASIC, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(idp, CONF_BASIC, new["refresh_token"]).json()["error"] == "invalid_grant"


def test_single_sign_on_and_logout(idp: TestProvider, browser: httpx.Client) -> None:
    first = sign_in(idp, http_client=browser)
    second = sign_in(idp, CONF_POST, username="bob", http_client=browser)  # no login page
    assert jwt_payload(second["id_token"])["sub"] == "alice"

    query = {
        "id_token_hint": first["id_token"],
        "state": "bye",
        "post_logout_redirect_uri": DEFAULT_POST_LOGOUT_REDIRECT_URI,
    }
    done = logout(f"{idp.endpoint('end_session')}?{urlencode(query)}", http_client=browser)
    assert done.redirect_url is not None
    assert done.redirect_url.startswith(DEFAULT_POST_LOGOUT_REDIRECT_URI)
    assert done.params == {"state": "bye"}
    third = sign_in(idp, username="bob", http_client=browser)  # login page again
    assert jwt_payload(third["id_token"])["sub"] == "bob"
    # Without offline_access, tokens end with the session.
    assert refresh(idp, CONF_BASIC, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_offline_access_tokens_outlive_logout(idp: TestProvider, browser: httpx.Client) -> None:
    # offline_access is granted only with prompt=consent (OpenID Connect Core, section 11);
    # login() then clicks through the consent page.
    offline = "openid offline_access"
    dropped = sign_in(idp, http_client=browser, scope=offline)
    assert dropped["scope"] == "openid"
    tokens = sign_in(idp, http_client=browser, scope=offline, prompt="consent")
    assert tokens["scope"] == offline
    query = {"id_token_hint": tokens["id_token"]}
    done = logout(f"{idp.endpoint('end_session')}?{urlencode(query)}", http_client=browser)
    assert done.redirect_url is None  # no post_logout_redirect_uri: the provider's own page
    assert refresh(idp, CONF_BASIC, tokens["refresh_token"]).status_code == 200


def test_claims_parameter(idp: TestProvider) -> None:
    plain = jwt_payload(sign_in(idp, scope="openid")["id_token"])
    assert "groups" not in plain
    claims = '{"id_token": {"groups": null, "email": {"essential": true}}}'
    asked = jwt_payload(sign_in(idp, scope="openid", claims=claims)["id_token"])
    assert asked["groups"] == ["admins", "analysts"]
    assert asked["email"] == "alice@example.com"


def test_form_post_response_mode(idp: TestProvider) -> None:
    result = login(idp.authorization_url("conf-basic", state="s-fp", response_mode="form_post"))
    assert result.response_mode == "form_post"
    assert result.action == result.callback_url == DEFAULT_REDIRECT_URI
    assert set(result.fields) == {"code", "state", "iss"}
    assert result.fields["state"] == "s-fp"
    assert result.fields["iss"] == idp.issuer
    assert exchange_code(idp, CONF_BASIC, result, None).status_code == 200


def test_pushed_authorization_requests(idp: TestProvider) -> None:
    refused = login(idp.authorization_url("par-required"))
    assert refused.error == "invalid_request"
    verifier, challenge = pkce_pair()
    pushed = idp.http.post(
        idp.endpoint("pushed_authorization_request"),
        auth=("par-required", "par-required-secret"),
        data={
            "client_id": "par-required",
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": DEFAULT_REDIRECT_URI,
            "state": "s-par",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert pushed.status_code == 201, pushed.text
    query = {"client_id": "par-required", "request_uri": pushed.json()["request_uri"]}
    result = login(f"{idp.endpoint('authorization')}?{urlencode(query)}")
    assert result.state == "s-par"
    assert exchange_code(idp, PAR_REQUIRED, result, verifier).status_code == 200


# -- run-time client registration ----------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str]]] = []

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def callback_url() -> Iterator[str]:
    """The redirect URI of a real HTTP server that records what reaches it."""
    _Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth/callback"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_registered_client_uses_its_own_redirect_uri(idp: TestProvider, callback_url: str) -> None:
    client = idp.register_client([callback_url])
    assert client.client_secret and client.redirect_uris == (callback_url,)
    url = idp.authorization_url(
        client.client_id, redirect_uri=callback_url, response_mode="form_post", state="s-reg"
    )
    result = login(url)
    assert result.action == callback_url
    with httpx.Client() as browser:
        assert result.deliver(browser).status_code == 200
    method, path, body = _Recorder.received[-1]
    assert (method, path) == ("POST", "/oauth/callback")
    assert dict(parse_qsl(body)) == result.fields
    assert exchange_code(idp, client, result, None).status_code == 200

    with pytest.raises(LoginError) as mismatch:  # redirect URIs must match exactly
        login(idp.authorization_url(client.client_id, redirect_uri=callback_url + "/x"))
    assert mismatch.value.status_code == 400
    assert "redirect_uri" in mismatch.value.body


def test_registered_public_client_requires_pkce(idp: TestProvider) -> None:
    redirect_uri = "http://127.0.0.1:9/public-cb"
    client = idp.register_client([redirect_uri], token_endpoint_auth_method="none")
    assert client.client_secret is None
    without_pkce = login(idp.authorization_url(client.client_id, redirect_uri=redirect_uri))
    assert without_pkce.error == "invalid_request"
    assert jwt_payload(sign_in(idp, client)["id_token"])["aud"] == client.client_id


def test_registered_client_can_require_par(idp: TestProvider) -> None:
    client = idp.register_client([DEFAULT_REDIRECT_URI], require_par=True)
    assert login(idp.authorization_url(client.client_id)).error == "invalid_request"


def test_short_lived_access_tokens(idp: TestProvider) -> None:
    client = idp.register_client([DEFAULT_REDIRECT_URI], access_token_ttl=3)
    tokens = sign_in(idp, client)
    assert 0 < tokens["expires_in"] <= 3
    time.sleep(4.5)
    expired = idp.http.get(idp.endpoint("userinfo"), headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401
    refreshed = refresh(idp, client, tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert 0 < refreshed.json()["expires_in"] <= 3


def test_registration_rejects_bad_metadata(idp: TestProvider) -> None:
    with pytest.raises(TestProviderError, match="access_token_ttl"):
        idp.register_client([DEFAULT_REDIRECT_URI], access_token_ttl=0)


# -- lifecycle -----------------------------------------------------------------------


def test_second_provider_with_its_own_settings(tmp_path: Path) -> None:
    log = tmp_path / "provider.log"
    with TestProvider(env={"IDP_ACCESS_TOKEN_TTL": "120"}, log_path=log) as other:
        assert other.port != 0
        assert 0 < sign_in(other)["expires_in"] <= 120
    assert other.returncode == 0  # stopped cleanly on SIGTERM
    assert '"ready":true' in log.read_text()
    with pytest.raises(TestProviderError, match="not running"):
        _ = other.issuer


def test_start_fails_loudly_without_node(tmp_path: Path) -> None:
    provider = TestProvider(node="no-such-node-binary", log_path=tmp_path / "log")
    with pytest.raises(TestProviderError, match="not on PATH"):
        provider.start()
