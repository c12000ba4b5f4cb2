"""Oversized and malformed callbacks: refused early, with the right status, nothing consumed.

The parser's own limits are unit-tested in
``tests/core/test_callback_failures.py::test_malformed_callback_rejected`` and
``test_tampered_state_rejected_and_rightful_login_survives[huge]``.  Here the
requests reach the module's routes over HTTP, each built around a real,
pending login that must still complete afterwards.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from dash_oauth_otel.adapter.routes import FORM_POST_MAX_BYTES
from tests.adapter.conftest import serve_app
from tests.security.support import error_code
from tests.security.support import pending

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def query_app(idp_server):
    with serve_app(idp_server) as running:
        yield running


@pytest.fixture(scope="module")
def form_post_app(idp_server):
    with serve_app(idp_server, response_mode="form_post") as running:
        yield running


def _rejections(telemetry, event):
    return [e.get("reason") for e in telemetry.events(event)]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: {**p, "state": p["state"] + "A" * 8200}, "param_too_large"),
        (lambda p: {**p, "code": p["code"] + "A" * 4100}, "param_too_large"),
        (lambda p: {**p, "padding": "x" * 60_000}, "param_too_large"),
        (lambda p: {**p, **{f"k{i}": "v" for i in range(20)}}, "too_many_params"),
        (lambda p: {**p, "k" * 100: "v"}, "param_too_large"),
        (lambda p: {**p, "error": "access_denied"}, "callback_shape"),
        (lambda p: {k: v for k, v in p.items() if k != "state"}, "state_missing"),
    ],
    ids=[
        "state>8KiB",
        "code>4KiB",
        "extra>1KiB",
        "17+params",
        "long-name",
        "code+error",
        "no-state",
    ],
)
def test_oversized_or_malformed_query_is_refused(query_app, exposure, telemetry, mutate, reason):
    """An oversized or malformed callback query (request smuggling, DoS, confusion).

    Refused with 400 before the state is even unsealed; the rightful callback,
    delivered afterwards, still completes.
    """
    http = exposure.browser(query_app)
    result = exposure.login(http, exposure.start(http))
    query = urlencode(mutate(dict(result.params)))
    page = http.get(f"/oauth/callback?{query}")
    assert page.status_code == 400
    assert error_code(page) == "invalid_callback_query"
    assert _rejections(telemetry, "audit_callback_query_rejected") == [reason]
    assert telemetry.events("audit_callback_received") == []
    assert pending(query_app, result.state)
    assert result.deliver(http).status_code == 303


def test_duplicate_query_members_are_refused(query_app, exposure, telemetry):
    """HTTP parameter pollution: the state or the code given twice (which one counts?)."""
    http = exposure.browser(query_app)
    result = exposure.login(http, exposure.start(http))
    for name in ("state", "code", "iss"):
        doubled = [*result.params.items(), (name, result.params[name])]
        page = http.get("/oauth/callback", params=doubled)
        assert page.status_code == 400 and error_code(page) == "invalid_callback_query"
    assert _rejections(telemetry, "audit_callback_query_rejected") == ["duplicate_param"] * 3
    assert pending(query_app, result.state)
    assert result.deliver(http).status_code == 303


def _form_post(exposure, running):
    http = exposure.browser(running)
    result = exposure.login(http, exposure.start(http))
    assert result.response_mode == "form_post"
    return http, result


def _complete(http, result):
    bridged = result.deliver(http)
    assert bridged.status_code == 303, bridged.text[:300]
    landed = http.get(bridged.headers["location"])
    assert landed.status_code == 303
    return landed


def test_form_post_body_over_64_kib_is_413(form_post_app, exposure, telemetry):
    """A ``form_post`` body over 64 KiB, with and without ``Content-Length``.

    Refused with 413 without reading more than the cap; the real response,
    posted afterwards, still completes.
    """
    http, result = _form_post(exposure, form_post_app)
    body = urlencode({**result.params, "padding": "x" * FORM_POST_MAX_BYTES})
    sized = http.post(result.action, content=body, headers={"Content-Type": FORM})
    assert sized.status_code == 413
    assert error_code(sized) == "invalid_callback_query"

    def chunks():
        data = body.encode()
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    chunked = http.post(result.action, content=chunks(), headers={"Content-Type": FORM})
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    failed = telemetry.events("audit_callback_validation_failed")
    assert [e["reason"] for e in failed] == ["body_too_large"] * 2
    assert {e["phase"] for e in failed} == {"form_post_request_validation"}
    assert pending(form_post_app, result.state)
    _complete(http, result)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "multipart/form-data; boundary=x", None],
)
def test_form_post_with_another_content_type_is_415(
    form_post_app, exposure, telemetry, content_type
):
    """A callback POST that is not ``application/x-www-form-urlencoded`` (parser confusion)."""
    http, result = _form_post(exposure, form_post_app)
    headers = {"Content-Type": content_type} if content_type else {}
    page = http.post(result.action, content=urlencode(result.params).encode(), headers=headers)
    assert page.status_code == 415
    assert error_code(page) == "invalid_callback_query"
    assert _rejections(telemetry, "audit_callback_validation_failed") == ["unsupported_media_type"]
    assert pending(form_post_app, result.state)
    _complete(http, result)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda p: [*p.items(), ("state", p["state"])], "duplicate_param"),
        (lambda p: [*p.items(), ("code", "another-code")], "duplicate_param"),
        (lambda p: [*p.items(), *((f"k{i}", "v") for i in range(40))], "param_type"),
        (lambda p: [(k, v) for k, v in p.items() if k != "state"], "state_missing"),
    ],
    ids=["state-twice", "code-twice", "40-fields", "no-state"],
)
def test_malformed_form_post_is_refused(form_post_app, exposure, telemetry, build, reason):
    """Duplicate members, too many fields, or no state in a ``form_post`` body."""
    http, result = _form_post(exposure, form_post_app)
    body = urlencode(build(dict(result.params)))
    page = http.post(result.action, content=body, headers={"Content-Type": FORM})
    assert page.status_code == 400
    assert error_code(page) == "invalid_callback_query"
    assert _rejections(telemetry, "audit_callback_validation_failed") == [reason]
    assert pending(form_post_app, result.state)
    _complete(http, result)


def test_form_post_body_not_utf8_is_refused(form_post_app, exposure, telemetry):
    """Bytes that are not UTF-8 in a ``form_post`` body."""
    http, result = _form_post(exposure, form_post_app)
    body = urlencode(result.params).encode() + b"&x=\xff\xfe"
    page = http.post(result.action, content=body, headers={"Content-Type": FORM})
    assert page.status_code == 400
    assert _rejections(telemetry, "audit_callback_validation_failed") == ["param_type"]
    _complete(http, result)


def test_form_post_handle_cannot_be_guessed_or_reused(form_post_app, exposure, telemetry):
    """The one-time handle of the ``form_post`` bridge: forged, oversized, then replayed."""
    http, result = _form_post(exposure, form_post_app)
    for forged in ("A" * 43, "x" * 5000, ""):
        page = http.get("/oauth/callback", params={"fp": forged})
        assert page.status_code == 400 and error_code(page) == "invalid_callback_query"
    assert (
        _rejections(telemetry, "audit_callback_query_rejected") == ["unknown_form_post_handle"] * 3
    )
    bridged = result.deliver(http)
    handle_url = bridged.headers["location"]
    assert http.get(handle_url).status_code == 303
    again = http.get(handle_url)
    assert again.status_code == 400 and error_code(again) == "invalid_callback_query"
