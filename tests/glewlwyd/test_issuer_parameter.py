"""RFC 9207 ``iss`` with a provider that sends it without advertising it (Glewlwyd).

Glewlwyd does not publish ``authorization_response_iss_parameter_supported``
yet puts ``iss`` in its authorization responses.  A present ``iss`` is always
compared, exactly: a wrong one is refused even though a missing one would be
accepted, and Glewlwyd's form_post (its fields URL-encoded twice) is refused as
``issuer_mismatch`` instead of being decoded into a match.
"""

from __future__ import annotations

import pytest

from dash_oauth_otel.core import complete_callback
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.errors import CallbackIssuerError
from tests.glewlwyd.harness import browser_login


def test_unadvertised_iss_is_still_compared(gl_client, gl_context, browser_token, telemetry):
    client = gl_client()
    assert not client.enforces_issuer_parameter  # not advertised
    request = prepare_call(client, browser_token)
    callback = browser_login(gl_context, request.url, client.redirect_uri)
    forged = {**callback.params, "iss": "https://evil.example"}
    with pytest.raises(CallbackIssuerError) as caught:
        complete_callback(client, forged, browser_token)
    assert caught.value.error == "issuer_mismatch"
    mismatch = telemetry.events("audit_callback_iss_mismatch")
    assert mismatch and mismatch[0]["callback_issuer"] == "https://evil.example"
    # Refused before any use of the state: the genuine response still completes.
    token, _ = complete_callback(client, callback.params, browser_token)
    assert token.id_token_validated


def test_missing_iss_accepted_when_not_advertised(gl_client, gl_context, browser_token):
    client = gl_client()
    request = prepare_call(client, browser_token)
    callback = browser_login(gl_context, request.url, client.redirect_uri)
    stripped = {k: v for k, v in callback.params.items() if k != "iss"}
    token, _ = complete_callback(client, stripped, browser_token)
    assert token.id_token_validated


def test_double_encoded_form_post_iss_is_refused(gl_client, gl_context, browser_token):
    client = gl_client(response_mode="form_post")
    request = prepare_call(client, browser_token)
    callback = browser_login(gl_context, request.url, client.redirect_uri)
    assert callback.method == "POST"
    assert callback.params["iss"] != client.provider.issuer  # Glewlwyd encodes it twice
    assert callback.params["iss"].startswith("http%3A%2F%2F")
    with pytest.raises(CallbackIssuerError) as caught:
        complete_callback(client, callback.params, browser_token)
    assert caught.value.error == "issuer_mismatch"
