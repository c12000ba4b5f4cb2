"""The test provider's fault API, exercised against the real Node provider."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.idp.harness import CONF_BASIC
from tests.idp.harness import CONF_POST
from tests.idp.harness import TAMPER_KINDS
from tests.idp.harness import TamperKind
from tests.idp.harness import TestProvider
from tests.idp.harness import TestProviderError
from tests.idp.harness import jwt_header
from tests.idp.harness import jwt_payload
from tests.idp.harness import login
from tests.idp.harness import pkce_pair
from tests.idp.tokens import bearer
from tests.idp.tokens import exchange_code
from tests.idp.tokens import published_kids
from tests.idp.tokens import refresh
from tests.idp.tokens import sign_in
from tests.idp.tokens import signature_valid


def test_token_error_fault(idp: TestProvider) -> None:
    verifier, challenge = pkce_pair()
    result = login(idp.authorization_url("conf-basic", code_challenge=challenge))
    idp.fail_token_endpoint()
    failed = exchange_code(idp, CONF_BASIC, result, verifier)
    assert failed.status_code == 500
    assert failed.json()["error"] == "server_error"
    retried = exchange_code(idp, CONF_BASIC, result, verifier)
    assert retried.status_code == 200  # the failed request never spent the code

    idp.fail_token_endpoint(times=2)
    assert refresh(idp, CONF_BASIC, retried.json()["refresh_token"]).status_code == 500
    idp.reset_faults()
    assert refresh(idp, CONF_BASIC, retried.json()["refresh_token"]).status_code == 200


def test_token_delay_fault(idp: TestProvider) -> None:
    idp.delay_token_endpoint(ms=1200)
    started = time.monotonic()
    sign_in(idp)
    assert time.monotonic() - started >= 1.2
    started = time.monotonic()
    sign_in(idp)
    assert time.monotonic() - started < 1.2

    idp.delay_token_endpoint(ms=5000, times=3)
    idp.reset_faults()
    started = time.monotonic()
    sign_in(idp)
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("what", TAMPER_KINDS)
def test_tamper_next_id_token(idp: TestProvider, what: TamperKind) -> None:
    idp.tamper_next_id_token(what)
    token = sign_in(idp, nonce="n-tamper")["id_token"]
    claims = jwt_payload(token)
    expected = {"nonce": "n-tamper", "aud": "conf-basic", "iss": idp.issuer, "sub": "alice"}
    changed = {name for name, value in expected.items() if claims[name] != value}
    assert changed == ({what} & set(expected))
    assert (claims["exp"] < time.time()) is (what == "exp")
    assert signature_valid(idp, token) is (what != "signature")  # re-signed with the real key

    clean = sign_in(idp, nonce="n-clean")["id_token"]  # the fault was used up
    assert signature_valid(idp, clean)
    assert jwt_payload(clean)["nonce"] == "n-clean"


def test_tamper_applies_to_refresh_and_is_cleared_by_reset(idp: TestProvider) -> None:
    tokens = sign_in(idp)
    idp.tamper_next_id_token("aud")
    refreshed = refresh(idp, CONF_BASIC, tokens["refresh_token"]).json()
    assert jwt_payload(refreshed["id_token"])["aud"] != "conf-basic"

    idp.tamper_next_id_token("sub")
    idp.reset_faults()
    assert jwt_payload(sign_in(idp)["id_token"])["sub"] == "alice"


def test_userinfo_fault(idp: TestProvider) -> None:
    headers = bearer(sign_in(idp)["access_token"])
    idp.fail_userinfo()
    assert idp.http.get(idp.endpoint("userinfo"), headers=headers).status_code == 503
    assert idp.http.get(idp.endpoint("userinfo"), headers=headers).status_code == 200

    idp.fail_userinfo(times=3)
    idp.reset_faults()
    assert idp.http.get(idp.endpoint("userinfo"), headers=headers).status_code == 200


def test_jwks_fault(idp: TestProvider) -> None:
    jwks_uri = idp.metadata["jwks_uri"]
    idp.fail_jwks(times=2)
    assert idp.http.get(jwks_uri).status_code == 503
    assert idp.http.get(jwks_uri).status_code == 503
    assert idp.http.get(jwks_uri).status_code == 200

    idp.fail_jwks()
    idp.reset_faults()
    assert idp.http.get(jwks_uri).status_code == 200


def test_key_rotation_keeps_sessions_and_tokens(idp: TestProvider, browser: httpx.Client) -> None:
    before = sign_in(idp, http_client=browser)
    old_kids = published_kids(idp)
    new_kid = idp.rotate_keys()
    assert new_kid not in old_kids
    assert published_kids(idp) == [new_kid, *old_kids]

    after = sign_in(idp, CONF_POST, username="bob", http_client=browser)  # session survived
    assert jwt_payload(after["id_token"])["sub"] == "alice"
    assert jwt_header(after["id_token"])["kid"] == new_kid
    assert signature_valid(idp, after["id_token"])
    assert signature_valid(idp, before["id_token"])  # the old key is still published
    userinfo = idp.http.get(idp.endpoint("userinfo"), headers=bearer(before["access_token"]))
    assert userinfo.status_code == 200
    refreshed = refresh(idp, CONF_BASIC, before["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert jwt_header(refreshed.json()["id_token"])["kid"] == new_kid


def test_key_rotation_can_retire_old_keys(idp: TestProvider) -> None:
    before = sign_in(idp)
    newest = idp.rotate_keys(retire_old=True)
    assert published_kids(idp) == [newest]
    idp.reset_faults()  # keys stay as they are
    assert published_kids(idp) == [newest]
    assert jwt_header(sign_in(idp)["id_token"])["kid"] == newest
    assert jwt_header(before["id_token"])["kid"] not in published_kids(idp)


def test_fault_api_refuses_bad_requests(idp: TestProvider) -> None:
    with pytest.raises(TestProviderError, match="what must be one of"):
        idp.tamper_next_id_token("everything")  # type: ignore[arg-type]
    with pytest.raises(TestProviderError, match="times must be a positive integer"):
        idp.fail_token_endpoint(times=0)
    with pytest.raises(TestProviderError, match="ms must be"):
        idp.delay_token_endpoint(ms=-1)
    assert idp.state()["faults"]["tokenError"] == 0
    missing = idp.http.post(f"{idp.issuer}/__test/no_such_fault", json={})
    assert missing.status_code == 404


def test_fault_api_is_loopback_only(idp: TestProvider) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as elsewhere:
        refused = elsewhere.post(f"{idp.issuer}/__test/token_error", json={"times": 1})
        assert refused.status_code == 403
        discovery = elsewhere.get(f"{idp.issuer}/.well-known/openid-configuration")
        assert discovery.status_code == 200  # the provider itself answers everyone
    assert idp.state()["faults"]["tokenError"] == 0
