"""Processes of a benchmark run: the provider, gunicorn servers, wrk, the load generator."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SECRET = "benchmark-secret-" + "b" * 40

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.idp.harness import TestProvider  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_provider(workdir: Path) -> TestProvider:
    return TestProvider(log_path=workdir / "provider.log").start()


@dataclass
class Server:
    """One gunicorn serving one variant of ``benchmarks.apps``."""

    name: str
    variant: str
    provider: TestProvider
    workdir: Path
    workers: int = 2
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    client_id: str = ""
    client_secret: str = ""
    library: str = ""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_path(self) -> str:
        return {
            "module": "/oauth/callback",
            "dashauth": "/oidc/idp/callback",
            "authlib": "/auth/callback",
        }.get(self.variant, "/cb")

    @property
    def login_path(self) -> str:
        return {
            "module": "/oauth/login",
            "dashauth": "/oidc/idp/login",
            "authlib": "/auth/login",
        }[self.variant]

    @property
    def login_url(self) -> str:
        return self.origin + self.login_path

    def start(self) -> Server:
        self.port = free_port()
        registered = self.provider.register_client(
            [self.origin + self.callback_path],
            post_logout_redirect_uris=[self.origin + "/oauth/signed-out"],
        )
        self.client_id = registered.client_id
        self.client_secret = registered.client_secret or ""
        store_dir = self.workdir / f"store-{self.name}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_VARIANT": self.variant,
            "BENCH_ORIGIN": self.origin,
            "BENCH_ISSUER": self.provider.issuer,
            "BENCH_CLIENT_ID": self.client_id,
            "BENCH_CLIENT_SECRET": self.client_secret,
            "BENCH_SECRET": SECRET,
            "BENCH_STORE": f"diskcache:{store_dir}",
            **self.env_extra,
        }
        # ``python -m`` puts the working directory first on sys.path: serve a
        # candidate copy of the library by running from that copy.
        cwd = Path(self.env_extra.get("BENCH_LIBRARY", ROOT))
        if cwd != ROOT:
            env["PYTHONPATH"] = f"{cwd}{os.pathsep}{ROOT}"
        found = subprocess.run(
            [sys.executable, "-c", "import dash_oauth_otel; print(dash_oauth_otel.__file__)"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.library = str(Path(found.stdout.strip()).parent)
        log = (self.workdir / f"gunicorn-{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(self.workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--backlog",
                "4096",
                "--timeout",
                "120",
                "benchmarks.apps:server",
            ],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn {self.name} exited: {self.log_tail()}")
            try:
                httpx.get(self.origin + "/_favicon.ico", timeout=2)
                if len(self.worker_pids()) == self.workers:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn {self.name} did not start: {self.log_tail()}")
        # Load each worker's app (imports, discovery, JWKS) before measuring anything.
        for _ in range(4 * self.workers):
            httpx.get(self.origin + "/_favicon.ico", timeout=10)
        return self

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def worker_memory(self) -> list[dict[str, int]]:
        out = []
        for pid in self.worker_pids():
            info = psutil.Process(pid).memory_full_info()
            out.append({"pid": pid, "rss": info.rss, "uss": info.uss, "pss": info.pss})
        return out

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in [self.process.pid, *self.worker_pids()] if self.process else []:
            try:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / f"gunicorn-{self.name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat.

    Busy is user + nice + system + steal: interrupt time (loopback networking
    included) is left out because it is not charged to any process.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    busy = fields[0] + fields[1] + fields[2] + fields[7]
    return busy / tick, sum(fields) / tick


class CpuMeter:
    """How much of the machine's CPU went to processes outside this benchmark.

    This benchmark's processes are this one, its descendants (gunicorn and its
    workers, the provider, wrk, the load generator) and the local redis-server;
    anything else is another user of a shared machine.
    """

    def __init__(self) -> None:
        self.busy0, self.total0 = system_cpu()
        self.mine0, self.alive0 = self._mine()

    @staticmethod
    def _mine() -> tuple[float, dict[int, float]]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        total = me.ru_utime + me.ru_stime + children_cpu() + redis_cpu()
        alive: dict[int, float] = {}
        for child in psutil.Process().children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            alive[child.pid] = times.user + times.system
        return total, alive

    def foreign_share(self) -> float:
        busy1, total1 = system_cpu()
        mine1, alive1 = self._mine()
        mine = mine1 - self.mine0
        mine += sum(v - self.alive0.get(pid, 0.0) for pid, v in alive1.items())
        return max(0.0, (busy1 - self.busy0) - mine) / max(total1 - self.total0, 1e-9)


def wait_for_quiet(
    *, threshold: float = 0.10, max_wait: float = 60.0, window: float = 2.0, say=print
) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` of the CPU."""
    deadline = time.monotonic() + max_wait
    while True:
        meter = CpuMeter()
        time.sleep(window)
        share = meter.foreign_share()
        if share < threshold or time.monotonic() >= deadline:
            return share
        say(f"other processes use {share:.0%} of the CPU: waiting for a quieter machine")


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk, the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_cpu() -> float:
    """CPU seconds of the local redis-server (0 if there is none)."""
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "redis-server":
            return process_cpu(process.pid)
    return 0.0


def process_cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except psutil.NoSuchProcess:
        return 0.0


# -- wrk -------------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str,
    script: Path,
    args: list[str],
    *,
    duration: float,
    connections: int,
    threads: int = 1,
) -> dict[str, Any]:
    """Run wrk and return requests/s, latency percentiles and error counts."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    text = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    latency = {
        f"p{p}": _seconds(m.group(1))
        for p in (50, 90, 99)
        if (m := re.search(rf"^\s+{p}%\s+(\S+)", text, re.M))
    }
    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        "latency": latency,
        "raw": text,
    }


# -- the load generator ------------------------------------------------------------------


def loadgen(args: list[str], *, timeout: float = 900.0) -> dict[str, Any]:
    """Run ``python -m benchmarks.loadgen`` in its own process; return its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping())
    except Exception:
        return False


def redis_namespace() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def clear_redis_namespace(namespace: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])


def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="dash-oauth-bench-"))
    return path


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
