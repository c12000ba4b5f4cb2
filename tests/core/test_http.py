"""Tests of dash_oauth_otel.core.http: the outbound HTTP seam, with injected transports."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.trace import SpanKind
from opentelemetry.trace import StatusCode

from dash_oauth_otel.core.http import DEFAULT_MAX_BODY_BYTES
from dash_oauth_otel.core.http import HttpClient
from dash_oauth_otel.core.http import HttpPolicy
from dash_oauth_otel.core.http import HttpResponse
from dash_oauth_otel.errors import DashOAuthError
from dash_oauth_otel.errors import TransportError
from dash_oauth_otel.telemetry import spans

SPAN = spans.USERINFO_HTTP
URL = "https://idp.example/userinfo"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers with a fixed callable."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


class WatchedStream(httpx.SyncByteStream):
    """A response body that remembers whether it was read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        yield from self.chunks


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[HttpClient, Recorder]]]:
    made: list[HttpClient] = []

    def make(answer: Handler, **policy: object) -> tuple[HttpClient, Recorder]:
        recorder = Recorder(answer)
        client = HttpClient(HttpPolicy(**policy), transport=httpx.MockTransport(recorder))  # type: ignore[arg-type]
        made.append(client)
        return client, recorder

    yield make
    for client in made:
        client.close()


def get(client: HttpClient, url: str = URL, **kwargs: object) -> HttpResponse:
    return client.request(
        "GET", url, span_name=SPAN, phase="userinfo", what="userinfo endpoint", **kwargs
    )  # type: ignore[arg-type]


def transport_error(client: HttpClient, url: str = URL) -> TransportError:
    with pytest.raises(TransportError) as caught:
        get(client, url)
    assert caught.value.phase == "userinfo"
    return caught.value


# -- responses ------------------------------------------------------------------


def test_success_returns_status_headers_and_body(make_client) -> None:
    client, recorder = make_client(
        lambda r: httpx.Response(
            200,
            headers={"Content-Type": "Application/JSON; charset=utf-8", "X-Thing": "v"},
            content=b'{"sub":"1"}',
        )
    )
    response = get(client, headers={"Accept": "application/json"})
    assert response.status == 200
    assert response.ok
    assert response.content == b'{"sub":"1"}'
    assert response.content_type == "application/json"
    assert response.headers["x-thing"] == "v"
    assert response.url == URL
    (sent,) = recorder.requests
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["user-agent"].startswith("dash-oauth-otel/")


def test_post_sends_form(make_client) -> None:
    client, recorder = make_client(lambda r: httpx.Response(200, json={}))
    client.request(
        "POST",
        "https://idp.example/token",
        span_name=spans.TOKEN_EXCHANGE_HTTP,
        phase="callback.code_exchange",
        what="token endpoint",
        data={"grant_type": "authorization_code", "code": "a b&c"},
    )
    (sent,) = recorder.requests
    assert sent.method == "POST"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.content == b"grant_type=authorization_code&code=a+b%26c"


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
def test_error_status_is_returned_not_raised(make_client, status: int) -> None:
    client, _ = make_client(lambda r: httpx.Response(status, content=b"nope"))
    response = get(client)
    assert response.status == status
    assert not response.ok
    assert response.content == b"nope"


def test_response_without_content_type() -> None:
    response = HttpResponse(status=204, headers={}, content=b"", url=URL)
    assert response.content_type == ""
    assert response.ok


@pytest.mark.parametrize(("status", "ok"), [(199, False), (200, True), (299, True), (300, False)])
def test_ok_is_2xx(status: int, ok: bool) -> None:
    assert HttpResponse(status=status, headers={}, content=b"", url=URL).ok is ok


# -- redirects ------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_refused_and_not_followed(make_client, status: int) -> None:
    location = "https://evil.example/steal?secret=1"
    client, recorder = make_client(lambda r: httpx.Response(status, headers={"Location": location}))
    error = transport_error(client)
    assert error.reason == "redirect_refused"
    assert str(status) in error.message
    assert "evil.example" not in str(error)
    assert [str(r.url) for r in recorder.requests] == [URL]


def test_not_modified_is_refused_too(make_client) -> None:
    client, _ = make_client(lambda r: httpx.Response(304))
    assert transport_error(client).reason == "redirect_refused"


# -- size cap -------------------------------------------------------------------


def test_declared_length_over_cap_refused_before_reading(make_client) -> None:
    body = WatchedStream([b"x" * 10])
    client, _ = make_client(
        lambda r: httpx.Response(
            200, headers={"Content-Length": str(DEFAULT_MAX_BODY_BYTES + 1)}, stream=body
        )
    )
    error = transport_error(client)
    assert error.reason == "body_too_large"
    assert str(DEFAULT_MAX_BODY_BYTES) in error.message
    assert not body.read


def test_body_of_exactly_the_cap_accepted(make_client) -> None:
    client, _ = make_client(lambda r: httpx.Response(200, content=b"x" * DEFAULT_MAX_BODY_BYTES))
    assert len(get(client).content) == DEFAULT_MAX_BODY_BYTES


def test_body_one_byte_over_the_cap_refused(make_client) -> None:
    client, _ = make_client(
        lambda r: httpx.Response(200, content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1))
    )
    assert transport_error(client).reason == "body_too_large"


def test_streamed_body_without_length_capped(make_client) -> None:
    chunk = b"y" * 65536
    chunks = [chunk] * 16 + [b"z"]  # 1 MiB + 1 byte, chunked
    client, _ = make_client(lambda r: httpx.Response(200, stream=WatchedStream(chunks)))
    assert transport_error(client).reason == "body_too_large"


def test_streamed_body_under_cap_accepted(make_client) -> None:
    chunks = [b"ab", b"cd", b"e"]
    client, _ = make_client(lambda r: httpx.Response(200, stream=WatchedStream(chunks)))
    assert get(client).content == b"abcde"


def test_understated_length_still_capped_while_streaming(make_client) -> None:
    body = WatchedStream([b"x" * 600, b"x" * 600])
    client, _ = make_client(
        lambda r: httpx.Response(200, headers={"Content-Length": "10"}, stream=body),
        max_body_bytes=1024,
    )
    assert transport_error(client).reason == "body_too_large"


def test_cap_comes_from_policy(make_client) -> None:
    client, _ = make_client(lambda r: httpx.Response(200, content=b"x" * 101), max_body_bytes=100)
    error = transport_error(client)
    assert error.reason == "body_too_large"
    assert "100-byte" in error.message


# -- network failures -----------------------------------------------------------


def raiser(exc_type: type[httpx.HTTPError]) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc_type("detail with secret=hunter2", request=request)  # type: ignore[call-arg]

    return answer


@pytest.mark.parametrize(
    "exc_type", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout]
)
def test_timeouts(make_client, exc_type: type[httpx.HTTPError]) -> None:
    client, _ = make_client(raiser(exc_type), timeout=2.5)
    error = transport_error(client)
    assert error.reason == "timeout"
    assert "2.5 s" in error.message
    assert "hunter2" not in str(error)
    assert isinstance(error.__cause__, exc_type)


@pytest.mark.parametrize(
    "exc_type", [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError]
)
def test_connection_failures(make_client, exc_type: type[httpx.HTTPError]) -> None:
    client, _ = make_client(raiser(exc_type))
    error = transport_error(client)
    assert error.reason == "connection_failed"
    assert exc_type.__name__ in error.message
    assert "hunter2" not in str(error)


def test_failure_while_reading_body(make_client) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"partial"
            raise httpx.ReadTimeout("read stalled")

    client, _ = make_client(lambda r: httpx.Response(200, stream=Broken()))
    assert transport_error(client).reason == "timeout"


# -- URL policy, re-checked per call --------------------------------------------


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("https://evil.example/userinfo", {"allowed_hosts": ("idp.example",)}),
        ("http://idp.example/userinfo", {}),
        ("http://127.0.0.1/userinfo", {}),
        ("https://user:pw@idp.example/userinfo", {}),
        ("https://idp.example/userinfo#frag", {}),
        ("ftp://idp.example/userinfo", {}),
    ],
)
def test_policy_refusal_sends_nothing(make_client, url: str, policy: dict) -> None:
    client, recorder = make_client(lambda r: httpx.Response(200), **policy)
    with pytest.raises(DashOAuthError):
        get(client, url)
    assert recorder.requests == []


def test_policy_checked_on_every_call(make_client) -> None:
    client, recorder = make_client(
        lambda r: httpx.Response(200), allowed_hosts=("idp.example", ".apis.example")
    )
    assert get(client, "https://idp.example/a").ok
    assert get(client, "https://keys.apis.example/b").ok
    with pytest.raises(DashOAuthError):
        get(client, "https://other.example/c")
    assert [r.url.host for r in recorder.requests] == ["idp.example", "keys.apis.example"]


def test_loopback_http_with_opt_in(make_client) -> None:
    client, recorder = make_client(lambda r: httpx.Response(200), allow_insecure_loopback=True)
    assert get(client, "http://127.0.0.1:9000/userinfo").ok
    assert len(recorder.requests) == 1


def test_policy_refusal_is_a_transport_error(make_client) -> None:
    # HttpClient.request documents TransportError "on a policy refusal".
    client, _ = make_client(lambda r: httpx.Response(200), allowed_hosts=("idp.example",))
    with pytest.raises(TransportError):
        get(client, "https://evil.example/userinfo")


@pytest.mark.parametrize(
    "url", ["https://idp.example:99999/userinfo", "https://idp.example:port/userinfo"]
)
def test_invalid_port_is_a_package_error(make_client, url: str) -> None:
    client, recorder = make_client(lambda r: httpx.Response(200))
    with pytest.raises(DashOAuthError):
        get(client, url)
    assert recorder.requests == []


# -- telemetry ------------------------------------------------------------------


def test_client_span_attributes_without_query(make_client, telemetry) -> None:
    client, _ = make_client(
        lambda r: httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"{}")
    )
    get(client, "https://idp.example:8443/userinfo?access_token=secret-value")
    found = telemetry.span(SPAN)
    attrs = dict(found.attributes or {})
    assert found.kind is SpanKind.CLIENT
    assert found.status.status_code is StatusCode.OK
    assert attrs["url.full"] == "https://idp.example:8443/userinfo"
    assert attrs["server.address"] == "idp.example"
    assert attrs["server.port"] == 8443
    assert attrs["http.request.method"] == "GET"
    assert attrs["oauth.phase"] == "userinfo"
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.response.content_type"] == "application/json"
    assert "secret-value" not in telemetry.exported_text()


def test_default_https_port_on_span(make_client, telemetry) -> None:
    client, _ = make_client(lambda r: httpx.Response(204))
    get(client)
    attrs = dict(telemetry.span(SPAN).attributes or {})
    assert attrs["server.port"] == 443
    assert "http.response.content_type" not in attrs


def test_error_status_marks_span(make_client, telemetry) -> None:
    client, _ = make_client(lambda r: httpx.Response(502, content=b"upstream secret body"))
    get(client)
    found = telemetry.span(SPAN)
    assert found.status.status_code is StatusCode.ERROR
    assert found.status.description == "HTTP 502"
    assert dict(found.attributes or {})["error.type"] == "502"
    assert "upstream secret body" not in telemetry.exported_text()


def test_transport_error_span_and_audit(make_client, telemetry) -> None:
    client, _ = make_client(raiser(httpx.ConnectError))
    transport_error(client, "https://idp.example/userinfo?token=secret-value")
    found = telemetry.span(SPAN)
    assert found.status.status_code is StatusCode.ERROR
    assert dict(found.attributes or {})["error.type"] == "TransportError"
    (event,) = telemetry.events("transport_error")
    assert event["url"] == "https://idp.example/userinfo"
    assert event["reason"] == "connection_failed"
    assert event["method"] == "GET"
    assert event["phase"] == "userinfo"
    assert "secret-value" not in telemetry.exported_text()
    assert "hunter2" not in telemetry.exported_text()


def test_duration_metric_recorded(make_client, telemetry) -> None:
    client, _ = make_client(lambda r: httpx.Response(201))
    get(client, "https://metric-probe.example/x")
    points = [
        p
        for p in telemetry.metric_points("http.client.request.duration")
        if p.attributes.get("server.address") == "metric-probe.example"
    ]
    assert len(points) == 1
    assert points[0].attributes["http.response.status_code"] == 201
    assert points[0].count >= 1


# -- lifecycle ------------------------------------------------------------------


def test_close_is_idempotent_and_client_reopens(make_client) -> None:
    client, recorder = make_client(lambda r: httpx.Response(200))
    client.close()
    client.close()
    assert get(client).ok
    client.close()
    assert get(client).ok
    assert len(recorder.requests) == 2


def test_policy_defaults() -> None:
    policy = HttpPolicy()
    assert policy.timeout == 5.0
    assert policy.max_body_bytes == 1 << 20
    assert policy.allowed_hosts == ()
    assert policy.allow_insecure_loopback is False
