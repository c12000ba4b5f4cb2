"""Property-based fuzzing of the module's inputs (hypothesis, no network).

Targets: the callback endpoint (query strings and ``form_post`` bodies, through
the Flask test client), the state unsealer and the state payload parser, and
the cookie readers.  Each runs 5,000 derandomized examples with no example
database, so a CI run is reproducible; ``FUZZ_EXAMPLES=50000`` runs more.

Structured inputs are decoded from a short byte string (each pair of bytes
picks a parameter name and a value from pools of hostile values), which keeps
generation cheap and still lets hypothesis shrink a failure to a few bytes;
free-form text and bytes are drawn as well.

The app's provider is built from explicit endpoints on a closed port: no
discovery, and any outbound call would fail, which the properties would catch
as a 5xx.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import flask
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from dash_oauth_otel import MemoryStore
from dash_oauth_otel import OAuthClient
from dash_oauth_otel.core import OAuthProvider
from dash_oauth_otel.core import prepare_call
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.state import StatePayload
from dash_oauth_otel.core.state import check_browser_token
from dash_oauth_otel.core.state import open_state
from dash_oauth_otel.errors import InputError
from dash_oauth_otel.errors import StateError
from dash_oauth_otel.telemetry import set_audit_hook
from examples.basic_app import create_app
from tests import otel
from tests.adapter.conftest import SECRET

ISSUER = "http://127.0.0.1:9"
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REJECTIONS = {
    "audit_callback_query_rejected",
    "audit_callback_iss_missing",
    "audit_callback_iss_mismatch",
    "audit_callback_validation_failed",
    "audit_login_failed",
}

PROVIDER = OAuthProvider(
    name="fuzz",
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/auth",
    token_endpoint=f"{ISSUER}/token",
    jwks_uri=f"{ISSUER}/jwks",
    userinfo_endpoint=f"{ISSUER}/me",
    iss_parameter_supported=True,
    http=HttpPolicy(timeout=0.5, allow_insecure_loopback=True),
)
# One client for the module: the states minted here are pending logins of the
# app built from it (same store), so they are genuine, valid states.
CLIENT = OAuthClient(
    provider=PROVIDER,
    client_id="fuzz-client",
    client_secret="fuzz-secret-" + "f" * 20,
    redirect_uri="http://127.0.0.1:8050/oauth/callback",
    scopes=("profile",),
    state_key=SECRET,
    state_store=MemoryStore(),
    use_par=False,
    response_mode="form_post",  # the callback POST is served only in form_post mode
)
REAL_STATES = [
    dict(parse_qsl(urlsplit(prepare_call(CLIENT, secrets.token_urlsafe(32)).url).query))["state"]
    for _ in range(3)
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hostile_values(genuine: list[str], seed: int) -> list[str]:
    """Genuine values, their mutations, and values known to upset parsers."""
    rng = random.Random(seed)
    junk = "Aa0-_=+/.%&?#;:\\ \t\n\r\x00\x7féЖ😀\ufeff\u202e"
    values = [*genuine, "", " ", "=", "&", "%", "%00", "%2F%2F", "\\", "null", "[]", "{}"]
    values += [ISSUER, ISSUER + "/", ISSUER.upper(), "https://evil.example", "access_denied"]
    values += ["x" * n for n in (1023, 1025, 2049, 4097, 8193, 9000)]
    values += [_b64(b"\x01" + rng.randbytes(n)) for n in (0, 28, 29, 60, 500)]
    values += [_b64(b"\x02" + rng.randbytes(40)), _b64(rng.randbytes(64))]
    for value in genuine:
        for _ in range(6):
            at = rng.randrange(len(value))
            char = rng.choice(junk)
            values += [value[:at], value[:at] + char + value[at + 1 :], value + char, char + value]
    values += ["".join(rng.choice(junk) for _ in range(rng.randrange(1, 20))) for _ in range(20)]
    return values


KEY_POOL = [
    *("code", "state", "iss", "error", "error_description", "error_uri", "fp", "complete"),
    *("step", "session_state", "response", "", "state[]", "STATE", "code\x00", "x" * 65),
]
VALUE_POOL = _hostile_values(REAL_STATES, seed=1)


def _decode_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Two bytes per parameter: its name and its value, from the pools."""
    return [
        (KEY_POOL[raw[i] % len(KEY_POOL)], VALUE_POOL[raw[i + 1] % len(VALUE_POOL)])
        for i in range(0, len(raw) - 1, 2)
    ]


PAIRS = st.binary(max_size=40).map(_decode_pairs)


@pytest.fixture(scope="module")
def fuzz_app() -> Any:
    return create_app(CLIENT)


@pytest.fixture(autouse=True, scope="module")
def _quiet_logs() -> Iterator[None]:
    """Keep thousands of audit log lines out of pytest's log capture (the hook gets them)."""
    logger = logging.getLogger("dash_oauth_otel")
    saved, sink = logger.propagate, logging.NullHandler()
    logger.propagate = False
    logger.addHandler(sink)
    try:
        yield
    finally:
        logger.removeHandler(sink)
        logger.propagate = saved


class _Audit:
    """Audit events of one example (spans and OTel logs of earlier examples are dropped)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> _Audit:
        otel.install()
        otel._spans.clear()
        otel._logs_exporter.clear()
        set_audit_hook(self.events.append)
        return self

    def __exit__(self, *exc: object) -> None:
        set_audit_hook(None)

    def types(self) -> set[str]:
        return {e["type"] for e in self.events}


def _check_rejection(response: Any, audit: _Audit, sent: object) -> None:
    """A clean refusal: 4xx (never 5xx, never success), not cached, audited."""
    assert 400 <= response.status_code < 500, (response.status_code, sent)
    assert response.headers["Cache-Control"] == "no-store", sent
    assert audit.types() & REJECTIONS, (audit.types(), sent)


@FUZZ
@given(
    query=st.one_of(
        PAIRS.map(urlencode),
        st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
        st.text(max_size=120),
    ),
    with_binding=st.booleans(),
)
def test_fuzz_callback_query(fuzz_app, query, with_binding):
    """Any query string on ``GET /oauth/callback``: a 4xx with an audit event, never a 5xx.

    Genuine states come up too (the app issued them): without the browser that
    started them they are still refused, and never consumed.
    """
    with _Audit() as audit, fuzz_app.server.test_client() as browser:
        if with_binding:
            module = fuzz_app.server.extensions["dash_oauth_otel"]
            browser.set_cookie(module.cookies.binding_name, secrets.token_urlsafe(32))
        response = browser.get("/oauth/callback", query_string=query)
        _check_rejection(response, audit, query)


CONTENT_TYPES = [
    *["application/x-www-form-urlencoded"] * 5,
    "application/x-www-form-urlencoded; charset=latin-1",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]


@FUZZ
@given(
    body=st.one_of(PAIRS.map(lambda pairs: urlencode(pairs).encode()), st.binary(max_size=200)),
    content_type=st.integers(0, len(CONTENT_TYPES) - 1).map(CONTENT_TYPES.__getitem__),
)
def test_fuzz_form_post_body(fuzz_app, body, content_type):
    """Any ``form_post`` body and content type: a 4xx with an audit event, never a 5xx."""
    with _Audit() as audit, fuzz_app.server.test_client() as browser:
        response = browser.post(
            "/oauth/callback", data=body, headers={"Content-Type": content_type}
        )
        _check_rejection(response, audit, (content_type, body))


SEALER = Sealer(SECRET, "state")
GENUINE = [SEALER.seal({"x": 1}), SEALER.seal({"s": "a" * 43, "iat": 1})]
SEALED_POOL = [v for v in _hostile_values(GENUINE, seed=2) if v not in GENUINE]


@FUZZ
@given(
    token=st.one_of(
        st.integers(0, len(SEALED_POOL) - 1).map(SEALED_POOL.__getitem__),
        st.text(max_size=120),
        st.binary(max_size=120).map(_b64),
        st.binary(min_size=28, max_size=120).map(lambda b: _b64(b"\x01" + b)),
        st.sampled_from([None, 0, 1.5, b"AQ", ["AQ"], {"v": 1}]),
    )
)
def test_fuzz_unseal_raises_only_state_errors(token):
    """``Sealer.unseal``: anything but its own output is a ``StateError`` with a reason."""
    try:
        SEALER.unseal(token)
    except StateError as exc:
        assert exc.reason
    else:
        raise AssertionError(f"unsealed a forgery: {token!r}")


FIELDS = ["s", "cid", "ru", "sc", "pf", "cf", "iat", "tid", "ma", "ot", "app", "zz"]
VALID = {
    "s": "x" * 43,
    "cid": "c",
    "ru": "u",
    "sc": [],
    "pf": "p",
    "cf": "f",
    "iat": 1.0,
    "tid": "t",
}
JSON_POOL: list[Any] = [
    *(None, True, False, 0, -1, 1, 2**53 + 1, 10**30, 10**400, -(10**400)),
    *(0.5, -1e308, 1e308, 5e-324, "", "x", "x" * 9000, "1.0", "\x00", "é"),
    *([], ["a"], [1], [None], [["a"]], {}, {"a": "b"}, {"a": 1}, {"": ""}, {"a": None}),
]


def _decode_payload(raw: bytes) -> dict[str, Any]:
    """First byte: start from a valid payload or not; then (field, value) byte pairs.

    A value byte past the pool removes the field instead.
    """
    payload: dict[str, Any] = dict(VALID) if raw[:1] and raw[0] % 2 else {}
    for i in range(1, len(raw) - 1, 2):
        name = FIELDS[raw[i] % len(FIELDS)]
        pick = raw[i + 1] % (len(JSON_POOL) + 4)
        if pick >= len(JSON_POOL):
            payload.pop(name, None)
        else:
            payload[name] = JSON_POOL[pick]
    return payload


@FUZZ
@given(payload=st.binary(max_size=12).map(_decode_payload))
def test_fuzz_open_state_payloads(payload):
    """``open_state`` over authentic seals of arbitrary JSON: a payload or a ``StateError``.

    Only the key holder can seal, so this is defence in depth: the payload
    parser behind the seal must have no other failure mode.
    """
    sealed = CLIENT.state_sealer.seal(payload)
    try:
        found = open_state(CLIENT, sealed)
    except StateError as exc:
        assert exc.reason in ("payload_shape", "token_too_large")
    else:
        assert isinstance(found, StatePayload)


# What a cookie value can be on the wire (a WSGI header is latin-1 text).
LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
COOKIE_TEXT = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters=";"),
        max_size=60,
    ),
    st.integers(0, len(VALUE_POOL) - 1)
    .map(VALUE_POOL.__getitem__)
    .filter(lambda v: ";" not in v and all(0x20 <= ord(c) <= 0xFF for c in v)),
)


@FUZZ
@given(session=COOKIE_TEXT, binding=COOKIE_TEXT, other=st.text(max_size=60))
def test_fuzz_cookie_readers(fuzz_app, session, binding, other):
    """The cookie readers and the session loader with any cookie values: never raise.

    Garbage names no session (``None``); the binding reader passes at most a
    bounded string on, which the binding check accepts or refuses with an
    ``InputError`` only.
    """
    module = fuzz_app.server.extensions["dash_oauth_otel"]
    cookies = module.cookies
    header = f"{cookies.session_name}={session}; {cookies.binding_name}={binding}"
    with fuzz_app.server.test_request_context("/", headers={"Cookie": header}):
        sid = module.cookies.session_id(flask.request)
        presented = module.cookies.binding(flask.request)
    assert sid is None or (isinstance(sid, str) and 0 < len(sid) <= 128)
    assert presented is None or (isinstance(presented, str) and 0 < len(presented) <= 256)
    for value in (sid, session, other):
        assert module.sessions.load(value) is None
    for value in (presented, binding, other):
        try:
            check_browser_token(value)
        except InputError as exc:
            assert exc.reason == "browser_token_invalid"


@FUZZ
@given(header=st.one_of(st.text(alphabet=LATIN1, max_size=120), COOKIE_TEXT))
def test_fuzz_cookie_header_on_status(fuzz_app, header):
    """Any ``Cookie`` header on a request: the app answers, signed out, never a 5xx."""
    with fuzz_app.server.test_client() as browser:
        response = browser.get("/oauth/status", headers={"Cookie": header})
    assert response.status_code == 200
    assert response.get_json()["authenticated"] is False
