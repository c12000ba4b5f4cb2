"""The OpenTelemetry examples, each with a real login against the real provider.

The OpenTelemetry API accepts one global provider of each kind per process and
``tests/otel.py`` installs in-memory ones in the test process, so each example
runs in a subprocess: it calls the example's ``setup_telemetry()``, serves the
basic app on loopback (``tests.adapter.conftest.serve_app``), logs in through
the provider, logs out, and shuts the providers down (which flushes them).

* ``examples/otel_console.py``: the span names, the audit events and the
  metrics appear on the subprocess's standard output;
* ``examples/otel_otlp.py``: a small OTLP/HTTP receiver on loopback gets
  protobuf POSTs on ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics``, decoded
  with ``opentelemetry.proto`` when it is installed.

Neither output may contain a secret of the login.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.idp.harness import TestProvider

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAME = "otel-examples-test"
LOGIN_SPANS = (
    "dash_oauth_otel.module.init",
    "dash_oauth_otel.login.request",
    "dash_oauth_otel.callback",
    "dash_oauth_otel.token.exchange",
    "dash_oauth_otel.token.exchange.http",
    "dash_oauth_otel.token.verify",
    "dash_oauth_otel.logout",
)
RESULT_PREFIX = "EXAMPLE-RESULT "

# Runs in the subprocess: the example's set-up, then one login and one logout.
_DRIVER = r"""
import importlib
import json
import os
from pathlib import Path

import httpx

example = importlib.import_module("examples." + os.environ["EXAMPLE"])
telemetry = example.setup_telemetry()

from tests.adapter.conftest import serve_app
from tests.idp.harness import TestProvider, login
from tests.cookies import session_cookie
from tests.cookies import binding_cookie


class Attached(TestProvider):
    # The provider the parent test started, reached through its issuer.

    def attach(self, issuer, port):
        self._issuer, self._port = issuer, port
        self._http = httpx.Client(timeout=15.0)
        self.metadata = self.discovery()
        return self


idp = Attached(log_path=Path(os.devnull)).attach(os.environ["ISSUER"], int(os.environ["IDP_PORT"]))
seen = []
with serve_app(idp) as running, running.http() as http:
    first = http.get("/oauth/login?next=/")
    assert first.status_code == 302, first.text
    seen.append(binding_cookie(http.cookies))
    result = login(first.headers["location"], http_client=http)
    seen += [result.code, result.state]
    landed = result.deliver(http)
    assert landed.status_code == 303, landed.text
    status = http.get("/oauth/status").json()
    assert status["authenticated"] is True
    sid = session_cookie(http.cookies)
    token = running.module.sessions.load(sid).token
    seen += [sid, token.access_token, token.refresh_token, token.id_token]
    seen += [running.client.client_secret, status["csrf_token"]]
    done = http.post("/oauth/logout", data={"csrf_token": status["csrf_token"]})
    assert done.status_code in (200, 303), done.text
telemetry.shutdown()
print("EXAMPLE-RESULT " + json.dumps({"secrets": [s for s in seen if s]}), flush=True)
"""


@dataclass
class Run:
    """What an example's subprocess printed."""

    output: str
    secrets: list[str]


def _run_example(example: str, idp: TestProvider, **extra_env: str) -> Run:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DASH_OAUTH_OTEL_", "PYTHONPATH"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        EXAMPLE=example,
        ISSUER=idp.issuer,
        IDP_PORT=str(idp.port),
        OTEL_SERVICE_NAME=SERVICE_NAME,
        **extra_env,
    )
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith(RESULT_PREFIX), done.stdout[-2000:]
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    assert len(result["secrets"]) >= 9
    return Run("\n".join(lines[:-1]), result["secrets"])


# -- console ---------------------------------------------------------------------------


def test_console_example_prints_the_login(idp):
    run = _run_example("otel_console", idp)
    for name in LOGIN_SPANS:
        assert f'"name": "{name}"' in run.output, name
    for event in ("audit_redirect_issued", "audit_login_success", "audit_logout"):
        assert event in run.output, event
    assert "dash_oauth_otel.login.outcomes" in run.output
    assert "http.client.request.duration" in run.output
    assert SERVICE_NAME in run.output
    for secret in run.secrets:
        assert secret not in run.output


# -- OTLP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """One request received by the collector stand-in."""

    path: str
    content_type: str
    body: bytes


class _Collector(BaseHTTPRequestHandler):
    posts: list[Post]

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        self.posts.append(Post(self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Post]]]:
    """An OTLP/HTTP receiver on loopback: its base URL and the requests it got."""
    posts: list[Post] = []
    handler = type("Collector", (_Collector,), {"posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", posts
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def _decoded(posts: list[Post]) -> dict[str, Any] | None:
    """Span names, log event names, metric names, scopes and services; None without the protos."""
    try:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        return None
    found: dict[str, Any] = {"spans": set(), "logs": set(), "metrics": set()}
    found.update(scopes=set(), services=set())

    def resource(res: Any) -> None:
        for kv in res.attributes:
            if kv.key == "service.name":
                found["services"].add(kv.value.string_value)

    for post in posts:
        if post.path == "/v1/traces":
            traces = ExportTraceServiceRequest.FromString(post.body)
            for rs in traces.resource_spans:
                resource(rs.resource)
                for ss in rs.scope_spans:
                    found["scopes"].add(ss.scope.name)
                    found["spans"].update(s.name for s in ss.spans)
        elif post.path == "/v1/logs":
            logs = ExportLogsServiceRequest.FromString(post.body)
            for rl in logs.resource_logs:
                resource(rl.resource)
                for sl in rl.scope_logs:
                    found["scopes"].add(sl.scope.name)
                    found["logs"].update(r.body.string_value for r in sl.log_records)
        elif post.path == "/v1/metrics":
            exported = ExportMetricsServiceRequest.FromString(post.body)
            for rm in exported.resource_metrics:
                resource(rm.resource)
                for sm in rm.scope_metrics:
                    found["scopes"].add(sm.scope.name)
                    found["metrics"].update(m.name for m in sm.metrics)
    return found


def test_otlp_example_sends_the_login_to_a_collector(idp, collector):
    endpoint, posts = collector
    run = _run_example("otel_otlp", idp, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    paths = {p.path for p in posts}
    assert {"/v1/traces", "/v1/logs", "/v1/metrics"} <= paths, paths
    for post in posts:
        assert post.content_type == "application/x-protobuf", post
        assert post.body, post.path
        for secret in run.secrets:
            assert secret.encode() not in post.body, post.path
    found = _decoded(posts)
    if found is None:  # opentelemetry-proto missing: the bodies were checked above
        return
    assert set(LOGIN_SPANS) <= found["spans"], found["spans"]
    assert {"audit_redirect_issued", "audit_login_success", "audit_logout"} <= found["logs"]
    assert {"dash_oauth_otel.login.outcomes", "http.client.request.duration"} <= found["metrics"]
    assert found["scopes"] == {"dash_oauth_otel"}
    assert found["services"] == {SERVICE_NAME}


def test_otlp_endpoints_follow_the_environment(monkeypatch):
    from examples import otel_otlp

    for name in ("", "TRACES_", "LOGS_", "METRICS_"):
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP_{name}ENDPOINT", raising=False)
    assert otel_otlp.signal_endpoint("traces") == "http://127.0.0.1:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert otel_otlp.signal_endpoint("logs") == "http://collector:4318/v1/logs"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://other:9/m")
    assert otel_otlp.signal_endpoint("metrics") == "http://other:9/m"
    assert otel_otlp.signal_endpoint("metrics", "http://x:1") == "http://x:1/v1/metrics"
