"""A provider's error answer at PAR or at the token endpoint, from Glewlwyd.

Each step reports its own error code (``par_error`` at PAR, not
``token_exchange_error``) with the provider's ``error`` code in the
``http_error`` audit event, and the page status of the error's class (502).
"""

from __future__ import annotations

import pytest

from dash_oauth_otel.core import complete_callback
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.errors import PushedAuthorizationError
from dash_oauth_otel.errors import TokenEndpointError
from tests.glewlwyd.harness import browser_login


def test_par_refusal_is_a_par_error(gl_client, browser_token, telemetry):
    client = gl_client(use_par=True, redirect_uri="http://127.0.0.1:9/unregistered")
    with pytest.raises(PushedAuthorizationError) as caught:
        prepare_call(client, browser_token)
    error = caught.value
    assert error.error == "par_error"
    assert not isinstance(error, TokenEndpointError)
    assert error.http_status == 502
    assert error.phase == "login.par"
    assert error.status is not None and error.status >= 400
    event = telemetry.events("http_error")[-1]
    assert event["phase"] == "login.par"
    assert event.get("oauth_error") == error.oauth_error


def test_wrong_secret_at_token_endpoint(gl_client, gl_context, browser_token, telemetry):
    client = gl_client(client_secret="not-the-secret")
    request = prepare_call(client, browser_token)
    callback = browser_login(gl_context, request.url, client.redirect_uri)
    with pytest.raises(TokenEndpointError) as caught:
        complete_callback(client, callback.params, browser_token)
    error = caught.value
    assert error.error == "token_exchange_error"
    assert error.http_status == 502
    assert error.status in (400, 401, 403)
    event = telemetry.events("http_error")[-1]
    assert event.get("oauth_error") == error.oauth_error
