"""Authorization-server mix-up (RFC 9207, RFC 9700 §4.4) with a real second provider.

The unit version (a forged ``iss`` value) is in
``tests/core/test_callback_failures.py::test_missing_or_wrong_iss_rejected_before_state_use``.
Here a second OpenID provider, on another port, really issues a code for the
app's own login request, and the browser brings it back to the app.
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest

from tests.idp.harness import TestProvider
from tests.security.support import error_code
from tests.security.support import pending
from tests.security.support import serve
from tests.security.support import with_query


@pytest.fixture(scope="module")
def other_idp(tmp_path_factory):
    """A second, independent OpenID provider (its own issuer, keys and accounts)."""
    provider = TestProvider(log_path=tmp_path_factory.mktemp("idp2") / "provider.log").start()
    try:
        yield provider
    finally:
        provider.stop()


def _to_other_provider(url: str, other: TestProvider, client_id: str) -> str:
    """The app's authorization request, redirected by the attacker to ``other``."""
    query = dict(parse_qsl(urlsplit(url).query))
    query["client_id"] = client_id
    return with_query(other.endpoint("authorization"), **query)


@pytest.mark.parametrize("response_mode", ["query", "form_post"])
def test_callback_from_another_issuer_is_refused_before_state_use(
    idp, other_idp, exposure, telemetry, response_mode
):
    """Mix-up: the app's login request answered by another provider.

    The second provider knows the app's redirect URI (the attacker registered
    it there) and answers with its own code, the app's state and its own
    ``iss``.  The app refuses on ``iss`` before looking at the state: nothing
    is consumed, the code goes nowhere, and the rightful login still completes.
    """
    with serve(idp, use_par=False, response_mode=response_mode) as running:
        assert running.client.enforces_issuer_parameter
        rogue = other_idp.register_client([running.client.redirect_uri])
        http = exposure.browser(running)
        url = exposure.start(http, "/reports")
        state = dict(parse_qsl(urlsplit(url).query))["state"]

        mixed = exposure.login(http, _to_other_provider(url, other_idp, rogue.client_id))
        assert mixed.iss == other_idp.issuer and mixed.state == state and mixed.code
        page = mixed.deliver(http)
        assert page.status_code == 400
        assert error_code(page) == "issuer_mismatch"
        assert "another issuer" in page.text
        mismatch = telemetry.events("audit_callback_iss_mismatch")
        assert len(mismatch) == 1
        assert mismatch[0]["callback_issuer"] == other_idp.issuer
        assert mismatch[0]["expected_issuer"] == idp.issuer
        # Refused before any use of the state: no callback received, nothing exchanged.
        assert telemetry.events("audit_callback_received") == []
        assert telemetry.spans("dash_oauth_otel.token.exchange.http") == []
        assert pending(running, state)

        # Without its iss, the rogue response is refused too (the provider sends one).
        stripped = {k: v for k, v in mixed.params.items() if k != "iss"}
        if response_mode == "form_post":
            missing = http.post(mixed.action, data=stripped)
        else:
            missing = http.get(mixed.action, params=stripped)
        assert error_code(missing) == "issuer_missing"
        assert len(telemetry.events("audit_callback_iss_missing")) == 1
        assert pending(running, state)

        # The rightful provider answers the same request: the login completes.
        landed = exposure.login(http, url).deliver(http)
        if response_mode == "form_post":
            landed = http.get(landed.headers["location"])
        assert landed.status_code == 303 and landed.headers["location"] == "/reports"
        status = http.get("/oauth/status").json()
        assert status["user"]["sub"] == "alice"
        assert not pending(running, state)
