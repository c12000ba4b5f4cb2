"""Run every benchmark of dash_oauth_otel and write ``benchmarks/results/``.

    bash scripts/bench                            # set up, then the full run (~8 minutes)
    .venv/bin/python benchmarks/run.py            # the full run, in a set-up .venv
    .venv/bin/python benchmarks/run.py --quick    # a smoke run (~3 minutes)

Every figure is a ratio of two measurements taken in the same run on the same
machine, repeated in rounds (the variants' order rotating from round to round)
so that a median and a spread can be quoted.  One provider (the npm
oidc-provider of ``tests/idp``) serves every variant; each variant is its own
``gunicorn`` serving ``benchmarks/apps.py``.

Writes ``results.md`` (the tables), ``results.json`` (every measurement),
``*.png`` (plots) and ``profile-*.txt|html`` (pyinstrument) into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import infra  # noqa: E402
from benchmarks import loadgen  # noqa: E402
from benchmarks.apps import CALLBACK_BODY  # noqa: E402

LUA = ROOT / "benchmarks" / "callback.lua"


@dataclass(frozen=True)
class Plan:
    quick: bool
    guard_rounds: int
    guard_seconds: float
    guard_connections: int
    guard_workers: int
    login_rounds: int
    login_count: int
    scale_users: tuple[int, ...]
    scale_duration: float
    scale_warmup: float
    scale_workers: int
    footprint_sessions: int
    profile_requests: int
    profile_logins: int

    @classmethod
    def full(cls) -> Plan:
        return cls(
            quick=False,
            guard_rounds=9,
            guard_seconds=4,
            guard_connections=8,
            guard_workers=2,
            login_rounds=9,
            login_count=15,
            scale_users=(50, 200, 500),
            scale_duration=15,
            scale_warmup=5,
            scale_workers=4,
            footprint_sessions=10_000,
            profile_requests=3000,
            profile_logins=30,
        )

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            quick=True,
            guard_rounds=3,
            guard_seconds=2,
            guard_connections=8,
            guard_workers=2,
            login_rounds=3,
            login_count=4,
            scale_users=(50, 200),
            scale_duration=4,
            scale_warmup=2,
            scale_workers=4,
            footprint_sessions=1000,
            profile_requests=500,
            profile_logins=5,
        )


# -- statistics ---------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of a list of per-round values."""
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "q1": loadgen.percentile(ordered, 25),
        "q3": loadgen.percentile(ordered, 75),
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- machine --------------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _command_output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else ""
    )


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    idp_package = ROOT / "tests" / "idp" / "node_modules" / "oidc-provider" / "package.json"
    try:
        oidc_provider = json.loads(idp_package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        oidc_provider = "unknown"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {
            name: _version(name)
            for name in (
                "dash-oauth-otel",
                "dash",
                "flask",
                "werkzeug",
                "gunicorn",
                "authlib",
                "dash-auth",
                "diskcache",
                "redis",
                "httpx",
                "opentelemetry-sdk",
                "pyinstrument",
            )
        },
        "node": _command_output(["node", "--version"]),
        "oidc-provider": oidc_provider,
        "redis-server": _command_output(["redis-server", "--version"]),
        "wrk": _command_output(["wrk", "--version"]),
        "git": _command_output(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }


# -- servers ---------------------------------------------------------------------------------


@dataclass
class Variant:
    label: str
    server: infra.Server
    cookie_file: Path | None = None


def _login_once(server: infra.Server) -> loadgen.LoginOutcome:
    outcome = asyncio.run(loadgen.sequential(server.login_url, 1))[0]
    if not outcome.ok:
        raise RuntimeError(f"login on {server.name} failed: {outcome.error}")
    return outcome


def _cookie_header(outcome: loadgen.LoginOutcome) -> str:
    return "; ".join(f"{k}={v}" for k, v in outcome.app_cookies.items())


def _check_callback(server: infra.Server, cookie: str) -> None:
    response = httpx.post(
        server.origin + "/_dash-update-component",
        content=CALLBACK_BODY,
        headers={"Content-Type": "application/json", "Cookie": cookie},
        timeout=10,
    )
    if response.status_code != 200 or "clicks=1" not in response.text:
        raise RuntimeError(
            f"{server.name}: the callback was not served as an authenticated user "
            f"({response.status_code}: {response.text[:200]})"
        )


def _server_env(library: Path | None) -> dict[str, str]:
    if library is None:
        return {}
    return {"BENCH_LIBRARY": str(library.resolve())}


# -- shared machine: rounds disturbed by other processes ----------------------------------------

DISTURBED = 0.15
"""A round is disturbed when other processes took more than this share of the machine's CPU."""
_quiet_budget = [120.0]  # seconds of waiting for a quiet machine, for the whole run


def quiet(what: str) -> None:
    """Wait a little (within the run's budget) for other processes to leave the CPU."""
    if _quiet_budget[0] <= 0:
        return
    started = time.monotonic()
    share = infra.wait_for_quiet(max_wait=min(60.0, _quiet_budget[0]), say=log)
    _quiet_budget[0] -= time.monotonic() - started
    if share >= 0.10:
        log(f"{what}: other processes still use {share:.0%} of the CPU; measuring anyway")


def _rotate(names: list[str], index: int) -> list[str]:
    k = index % len(names)
    return names[k:] + names[:k]


def rounds(
    what: str,
    wanted: int,
    one: Any,
    describe: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``wanted`` rounds; a disturbed round is set aside and run again.

    At most half as many extra rounds as wanted are run.  Returns (kept rounds,
    disturbed rounds); when too few quiet rounds were had, the disturbed ones are
    kept as well (and flagged in the results).
    """
    kept: list[dict[str, Any]] = []
    disturbed: list[dict[str, Any]] = []
    index = 0
    while len(kept) < wanted and index < wanted + wanted // 2 + 1:
        row = one(index)
        index += 1
        other = max(r["foreign_cpu_share"] for r in row.values())
        note = f" (other processes {other:.0%}: disturbed, run again)" if other > DISTURBED else ""
        log(f"{what} round {index}: {describe(row)}{note}")
        if other > DISTURBED:
            disturbed.append(row)
            quiet(what)
        else:
            kept.append(row)
    if len(kept) < max(3, wanted // 2):
        log(f"{what}: only {len(kept)} quiet rounds; the disturbed ones are kept too")
        kept += disturbed
        for row in disturbed:
            for r in row.values():
                r["disturbed"] = True
    return kept, disturbed


# -- figures 1 and 3 (guard) and 2 and 3 (login) ---------------------------------------------------


def guard_and_login(
    plan: Plan,
    provider: Any,
    work: Path,
    *,
    redis: bool,
    patched: Path | None,
    logins: bool = True,
) -> dict[str, Any]:
    body_file = work / "callback-body.json"
    body_file.write_text(CALLBACK_BODY)
    specs: list[tuple[str, str, dict[str, str]]] = [
        ("noauth", "noauth", {}),
        ("module", "module", {}),
        ("module_otel", "module", {"BENCH_OTEL": "1"}),
        ("dashauth", "dashauth", {}),
        ("authlib", "authlib", {}),
        ("module_plain", "module", {"BENCH_FLOW": "plain"}),
    ]
    if redis:
        specs.append(
            ("module_redis", "module", {"BENCH_STORE": "redis:" + infra.redis_namespace()})
        )
    if patched is not None:
        specs.append(("module_patched", "module", _server_env(patched)))
        specs.append(("module_patched_otel", "module", {**_server_env(patched), "BENCH_OTEL": "1"}))
    servers: dict[str, infra.Server] = {}
    provider_pid = provider._process.pid
    try:
        for name, variant, extra in specs:
            log(f"starting gunicorn -w {plan.guard_workers} for {name}")
            servers[name] = infra.Server(
                name, variant, provider, work, workers=plan.guard_workers, env_extra=extra
            ).start()
        guard_names = [n for n in servers if n not in ("authlib", "module_plain")]
        login_names = [n for n in servers if n not in ("noauth", "module_redis")]

        # Sessions for the guard, and a warm-up of every login path.
        cookies: dict[str, Path] = {}
        cookie_bytes: dict[str, dict[str, Any]] = {}
        for name in sorted(set(guard_names) | set(login_names)):
            server = servers[name]
            if server.variant == "noauth":
                header = "x=1"
            else:
                for _ in range(2):
                    outcome = _login_once(server)
                header = _cookie_header(outcome)
                cookie_bytes[name] = {
                    "cookie_header_bytes": len(header),
                    "cookies": {k: len(v) for k, v in outcome.app_cookies.items()},
                    "set_cookie_bytes_during_login": outcome.set_cookie_bytes,
                }
            path = work / f"cookie-{name}.txt"
            path.write_text(header + "\n")
            cookies[name] = path
            if name in guard_names:
                _check_callback(server, header)

        # Figure 1 and 3 (guard): rounds of wrk, order rotating.
        def guard_round(index: int) -> dict[str, dict[str, Any]]:
            row: dict[str, dict[str, Any]] = {}
            for name in _rotate(guard_names, index):
                server = servers[name]
                cpu0 = server.cpu_seconds()
                meter = infra.CpuMeter()
                result = infra.wrk(
                    server.origin + "/_dash-update-component",
                    LUA,
                    [str(body_file), str(cookies[name])],
                    duration=plan.guard_seconds,
                    connections=plan.guard_connections,
                )
                result["foreign_cpu_share"] = meter.foreign_share()
                cpu = server.cpu_seconds() - cpu0
                result["server_cpu_us_per_request"] = 1e6 * cpu / max(result["requests"], 1)
                result.pop("raw")
                row[name] = result
            return row

        quiet("guard")
        guard_rows, guard_disturbed = rounds(
            "guard",
            plan.guard_rounds,
            guard_round,
            lambda row: ", ".join(f"{n} {row[n]['rps']:.0f}/s" for n in guard_names),
        )
        guard_runs = {n: [row[n] for row in guard_rows] for n in guard_names}
        for name in guard_names:
            _check_callback(servers[name], cookies[name].read_text().strip())

        # Figures 2 and 3 (login): rounds of sequential logins, order rotating.
        def login_round(index: int) -> dict[str, dict[str, Any]]:
            row: dict[str, dict[str, Any]] = {}
            for name in _rotate(login_names, index):
                meter = infra.CpuMeter()
                app_cpu0 = servers[name].cpu_seconds()
                provider_cpu0 = infra.process_cpu(provider_pid)
                outcomes = asyncio.run(
                    loadgen.sequential(servers[name].login_url, plan.login_count)
                )
                app_cpu = servers[name].cpu_seconds() - app_cpu0
                provider_cpu = infra.process_cpu(provider_pid) - provider_cpu0
                failed = [o.error for o in outcomes if not o.ok]
                if failed:
                    raise RuntimeError(f"login on {name} failed: {failed[:3]}")
                row[name] = {
                    "mean_ms": 1000 * statistics.fmean(o.seconds for o in outcomes),
                    "median_ms": 1000 * statistics.median(o.seconds for o in outcomes),
                    "app_mean_ms": 1000 * statistics.fmean(o.app_seconds for o in outcomes),
                    "provider_mean_ms": 1000
                    * statistics.fmean(o.provider_seconds for o in outcomes),
                    "requests": outcomes[0].requests,
                    "app_cpu_ms": 1000 * app_cpu / len(outcomes),
                    "provider_cpu_ms": 1000 * provider_cpu / len(outcomes),
                    "foreign_cpu_share": meter.foreign_share(),
                }
            return row

        login_runs: dict[str, list[dict[str, Any]]] = {}
        login_disturbed: list[dict[str, Any]] = []
        if logins:
            quiet("login")
            login_rows, login_disturbed = rounds(
                "login",
                plan.login_rounds,
                login_round,
                lambda row: ", ".join(f"{n} {row[n]['mean_ms']:.1f} ms" for n in login_names),
            )
            login_runs = {n: [row[n] for row in login_rows] for n in login_names}
        memory = {name: servers[name].worker_memory() for name in servers}
        libraries = {name: servers[name].library for name in servers}
    finally:
        for server in servers.values():
            server.stop()
    return {
        "guard_runs": guard_runs,
        "login_runs": login_runs,
        "guard_disturbed_rounds": guard_disturbed,
        "login_disturbed_rounds": login_disturbed,
        "cookies": cookie_bytes,
        "libraries": libraries,
        "worker_memory_after": memory,
    }


def paired(runs: dict[str, list[dict[str, Any]]], a: str, b: str, key: str) -> list[float]:
    """Per-round ratios runs[a][i][key] / runs[b][i][key] (none if a variant was not run)."""
    if not runs.get(a) or not runs.get(b):
        return []
    return [x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)]


# -- figure 4 (scale) ------------------------------------------------------------------------------


def scale(plan: Plan, provider: Any, work: Path, *, redis: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"levels": list(plan.scale_users), "runs": {}}
    stores = [("diskcache", {})]
    if redis:
        stores.append(("redis", {"BENCH_STORE": "redis:" + infra.redis_namespace()}))
    provider_pid = provider._process.pid
    reference: dict[str, Any] | None = None
    for store, extra in stores:
        log(f"starting gunicorn -w {plan.scale_workers} (module, {store})")
        server = infra.Server(
            f"scale-{store}", "module", provider, work, workers=plan.scale_workers, env_extra=extra
        ).start()
        try:
            for _ in range(2):
                _login_once(server)
            if reference is None:
                reference = {
                    "issuer": provider.issuer,
                    "client_id": server.client_id,
                    "client_secret": server.client_secret,
                    "redirect_uri": server.origin + "/oauth/callback",
                    "metadata": provider.metadata,
                }
            runs = []
            for users in plan.scale_users:
                runs.append(
                    _scale_run(
                        plan,
                        ["--start", server.login_url],
                        users,
                        provider_pid=provider_pid,
                        server=server,
                    )
                )
                r = runs[-1]
                log(
                    f"scale {store} {users} users: {r['logins_per_s']:.1f} logins/s, "
                    f"p99 {r['p99_s'] * 1000:.0f} ms, errors {r['errors']}"
                )
            out["runs"][store] = runs
            out.setdefault("worker_memory", {})[store] = server.worker_memory()
        finally:
            server.stop()
    assert reference is not None
    runs = []
    for users in plan.scale_users:
        runs.append(
            _scale_run(
                plan,
                ["--provider-json", json.dumps(reference)],
                users,
                provider_pid=provider_pid,
                server=None,
            )
        )
        r = runs[-1]
        log(
            f"scale provider alone {users} users: {r['logins_per_s']:.1f} logins/s, "
            f"p99 {r['p99_s'] * 1000:.0f} ms, errors {r['errors']}"
        )
    out["runs"]["provider"] = runs
    return out


def _scale_run(
    plan: Plan,
    target: list[str],
    users: int,
    *,
    provider_pid: int,
    server: infra.Server | None,
) -> dict[str, Any]:
    quiet(f"scale {users} users")
    provider_cpu0 = infra.process_cpu(provider_pid)
    app_cpu0 = server.cpu_seconds() if server else 0.0
    redis0 = infra.redis_cpu()
    busy0, total0 = infra.system_cpu()
    started = time.perf_counter()
    result = infra.loadgen(
        [
            "scale",
            *target,
            "--users",
            str(users),
            "--duration",
            str(plan.scale_duration),
            "--warmup",
            str(plan.scale_warmup),
        ]
    )
    wall = time.perf_counter() - started
    result["wall_s"] = wall
    result["provider_cpu_s"] = infra.process_cpu(provider_pid) - provider_cpu0
    result["app_cpu_s"] = (server.cpu_seconds() - app_cpu0) if server else 0.0
    busy1, total1 = infra.system_cpu()
    cores = os.cpu_count() or 1
    result["redis_cpu_s"] = infra.redis_cpu() - redis0
    mine = (
        result["provider_cpu_s"]
        + result["app_cpu_s"]
        + result["generator_cpu_s"]
        + result["redis_cpu_s"]
    )
    result["cpu_share"] = {
        "provider": result["provider_cpu_s"] / wall / cores,
        "app": result["app_cpu_s"] / wall / cores,
        "generator": result["generator_cpu_s"] / wall / cores,
        "redis": result["redis_cpu_s"] / wall / cores,
        "other": max(0.0, (busy1 - busy0) - mine) / max(total1 - total0, 1e-9),
    }
    time.sleep(1)
    return result


# -- figure 5 (footprint) ------------------------------------------------------------------------


def footprint(plan: Plan, provider: Any, work: Path, *, redis: bool) -> dict[str, Any]:
    from dash_oauth_otel import DiskcacheStore
    from dash_oauth_otel import RedisStore
    from dash_oauth_otel.adapter.sessions import SESSION_PREFIX
    from dash_oauth_otel.adapter.sessions import SessionManager
    from dash_oauth_otel.adapter.sessions import _key

    out: dict[str, Any] = {"sessions": plan.footprint_sessions}
    body_file = work / "callback-body.json"
    body_file.write_text(CALLBACK_BODY)
    quiet("footprint")
    log(f"footprint: gunicorn -w {plan.scale_workers} (module, diskcache)")
    server = infra.Server("footprint", "module", provider, work, workers=plan.scale_workers).start()
    try:
        outcome = _login_once(server)
        sid = outcome.app_cookies["dash_oauth_session"]
        header = _cookie_header(outcome)
        out["cookie_header_bytes"] = len(header)
        out["cookies"] = {k: len(v) for k, v in outcome.app_cookies.items()}
        store_dir = work / "store-footprint"
        store = DiskcacheStore(store_dir)
        manager = SessionManager(
            store=store,
            secret=infra.SECRET.encode(),
            idle_timeout=8 * 3600.0,
            max_lifetime=24 * 3600.0,
        )
        raw = store.get(_key(sid))
        record = manager.load(sid)
        assert raw is not None and record is not None
        out["record_value_bytes"] = len(raw)
        out["record_key_bytes"] = len(_key(sid)) + len("dash_oauth_otel:")
        out["record_json_bytes"] = len(json.dumps(record.to_json(), separators=(",", ":")))
        out["token_parts_bytes"] = {
            "access_token": len(record.token.access_token),
            "refresh_token": len(record.token.refresh_token or ""),
            "id_token": len(record.token.id_token or ""),
            "claims_json": len(json.dumps(dict(record.token.id_token_claims or {}))),
            "userinfo_json": len(json.dumps(dict(record.token.userinfo or {}))),
        }
        cookie_file = work / "cookie-footprint-one.txt"
        cookie_file.write_text(header + "\n")
        # Warm every worker with the one real session, then measure resident memory.
        infra.wrk(
            server.origin + "/_dash-update-component",
            LUA,
            [str(body_file), str(cookie_file)],
            duration=3,
            connections=8,
        )
        out["rss_before"] = server.worker_memory()
        db = store_dir / "cache.db"
        size_before = _db_size(store_dir)
        t = time.perf_counter()
        sids = [
            manager.create(record.token, auth_time=record.auth_time).sid
            for _ in range(plan.footprint_sessions)
        ]
        out["create_seconds"] = time.perf_counter() - t
        out["diskcache_bytes_per_session"] = (_db_size(store_dir) - size_before) / len(sids)
        out["diskcache_db"] = str(db.name)
        many = work / "cookies-many.txt"
        many.write_text("".join(f"dash_oauth_session={s}\n" for s in sids))
        # Every session used at least once, spread over the workers.
        duration = max(5.0, plan.footprint_sessions / 1000)
        run = infra.wrk(
            server.origin + "/_dash-update-component",
            LUA,
            [str(body_file), str(many)],
            duration=duration,
            connections=8,
        )
        run.pop("raw")
        if run["non_2xx"] or run["socket_errors"]:
            raise RuntimeError(f"footprint: {run['non_2xx']} failed requests over the sessions")
        out["wrk_many_sessions"] = run
        out["rss_after"] = server.worker_memory()
        _check_callback(server, f"dash_oauth_session={sids[-1]}")
        t = time.perf_counter()
        count = sum(1 for _ in store.scan(SESSION_PREFIX))
        out["scan_sessions"] = count
        out["scan_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        decoded = sum(1 for _ in manager.scan())
        out["sweep_decode_seconds"] = time.perf_counter() - t
        out["sweep_decoded"] = decoded
    finally:
        server.stop()
    if redis:
        import redis as redis_lib

        namespace = infra.redis_namespace()
        rstore = RedisStore.from_url("redis://127.0.0.1:6379/0", namespace=namespace)
        rmanager = SessionManager(
            store=rstore,
            secret=infra.SECRET.encode(),
            idle_timeout=8 * 3600.0,
            max_lifetime=24 * 3600.0,
        )
        client = redis_lib.Redis(host="127.0.0.1", port=6379)
        count = min(plan.footprint_sessions, 2000)
        used0 = int(client.info("memory")["used_memory"])
        made = [rmanager.create(record.token, auth_time=record.auth_time).sid for _ in range(count)]
        used1 = int(client.info("memory")["used_memory"])
        out["redis_sessions"] = count
        out["redis_used_memory_per_session"] = (used1 - used0) / count
        out["redis_memory_usage_key"] = int(
            client.memory_usage(f"{namespace}:{_key(made[0])}") or 0
        )
        infra.clear_redis_namespace(namespace)
    return out


def _db_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("cache.db*"))


# -- profiles ------------------------------------------------------------------------------


def profiles(plan: Plan, provider: Any, work: Path, out: Path) -> dict[str, Any]:
    from benchmarks import profile_hot

    quiet("profile")
    registered = provider.register_client(["http://127.0.0.1:9/oauth/callback"])
    result = profile_hot.run(
        provider.issuer,
        registered.client_id,
        registered.client_secret or "",
        "http://127.0.0.1:9",
        work / "store-profile",
        out,
        requests=plan.profile_requests,
        logins=plan.profile_logins,
    )
    for item in result.values():
        item.pop("top", None)
    return result


# -- report ------------------------------------------------------------------------------------


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline rows: ratio, median, spread, target, met."""
    rows: list[dict[str, Any]] = []
    gl = results.get("guard_login")
    if gl:
        g, lg = gl["guard_runs"], gl["login_runs"]

        def row(
            figure: str, name: str, values: list[float], target: str | None, ok: Any | None
        ) -> None:
            if not values:
                return
            s = summary(values)
            rows.append(
                {
                    "figure": figure,
                    "ratio": name,
                    **s,
                    "target": target or "-",
                    "met": "-" if ok is None else ("yes" if ok(s["median"]) else "no"),
                }
            )

        def pooled_row(figure: str, name: str, runs: Any, a: str, b: str, key: str) -> None:
            # CPU times are read in clock ticks (10 ms): a ratio per round of a few
            # logins is too coarse, so the rounds are pooled into one ratio.
            if not runs.get(a) or not runs.get(b):
                return
            value = sum(r[key] for r in runs[a]) / max(sum(r[key] for r in runs[b]), 1e-9)
            rows.append(
                {
                    "figure": figure,
                    "ratio": name,
                    "median": value,
                    "q1": float("nan"),
                    "q3": float("nan"),
                    "min": float("nan"),
                    "max": float("nan"),
                    "n": len(runs[a]),
                    "target": "-",
                    "met": "-",
                }
            )

        row(
            "1 guard",
            "req/s module / no auth",
            paired(g, "module", "noauth", "rps"),
            ">= 0.90",
            lambda m: m >= 0.90,
        )
        row(
            "1 guard",
            "req/s module / dash-auth OIDCAuth",
            paired(g, "module", "dashauth", "rps"),
            ">= 1.0",
            lambda m: m >= 1.0,
        )
        row(
            "1 guard",
            "server CPU per request: no auth / module",
            paired(g, "noauth", "module", "server_cpu_us_per_request"),
            None,
            None,
        )
        row(
            "1 guard",
            "server CPU per request: dash-auth / module",
            paired(g, "dashauth", "module", "server_cpu_us_per_request"),
            None,
            None,
        )
        if "module_redis" in g:
            row(
                "1 guard",
                "req/s module (Redis) / no auth",
                paired(g, "module_redis", "noauth", "rps"),
                None,
                None,
            )
        if "module_patched" in g:
            row(
                "1 guard",
                "req/s module (patched) / no auth",
                paired(g, "module_patched", "noauth", "rps"),
                None,
                None,
            )
            row(
                "1 guard",
                "req/s module (patched) / module",
                paired(g, "module_patched", "module", "rps"),
                None,
                None,
            )
            row(
                "1 guard",
                "server CPU per request: no auth / module (patched)",
                paired(g, "noauth", "module_patched", "server_cpu_us_per_request"),
                None,
                None,
            )
        row(
            "2 login",
            "round trip module / authlib (same provider calls)",
            paired(lg, "module_plain", "authlib", "mean_ms"),
            "<= 1.10",
            lambda m: m <= 1.10,
        )
        row(
            "2 login",
            "round trip module defaults (PAR + userinfo) / authlib",
            paired(lg, "module", "authlib", "mean_ms"),
            None,
            None,
        )
        row(
            "2 login",
            "app time module / authlib (same provider calls)",
            paired(lg, "module_plain", "authlib", "app_mean_ms"),
            None,
            None,
        )
        pooled_row(
            "2 login",
            "app server CPU per login module / authlib (same provider calls) (pooled over rounds)",
            lg,
            "module_plain",
            "authlib",
            "app_cpu_ms",
        )
        pooled_row(
            "2 login",
            "app server CPU per login module defaults / authlib (pooled over rounds)",
            lg,
            "module",
            "authlib",
            "app_cpu_ms",
        )
        row(
            "2 login",
            "round trip dash-auth / authlib",
            paired(lg, "dashauth", "authlib", "mean_ms"),
            None,
            None,
        )
        row(
            "3 telemetry",
            "guard time SDK on / off (req/s off / on)",
            paired(g, "module", "module_otel", "rps"),
            "<= 1.05",
            lambda m: m <= 1.05,
        )
        row(
            "3 telemetry",
            "login round trip SDK on / off",
            paired(lg, "module_otel", "module", "mean_ms"),
            "<= 1.10",
            lambda m: m <= 1.10,
        )
        row(
            "3 telemetry",
            "login app time SDK on / off",
            paired(lg, "module_otel", "module", "app_mean_ms"),
            None,
            None,
        )
        row(
            "3 telemetry",
            "guard server CPU per request SDK on / off",
            paired(g, "module_otel", "module", "server_cpu_us_per_request"),
            None,
            None,
        )
        pooled_row(
            "3 telemetry",
            "login app server CPU SDK on / off (pooled over rounds)",
            lg,
            "module_otel",
            "module",
            "app_cpu_ms",
        )
        if "module_patched" in lg:
            row(
                "2 login",
                "round trip module (patched) / module",
                paired(lg, "module_patched", "module", "mean_ms"),
                None,
                None,
            )
        if "module_patched_otel" in g:
            row(
                "3 telemetry",
                "guard time SDK on / off, patched",
                paired(g, "module_patched", "module_patched_otel", "rps"),
                None,
                None,
            )
    sc = results.get("scale")
    if sc:
        for store in ("diskcache", "redis"):
            for run, ref in zip(sc["runs"].get(store, []), sc["runs"]["provider"], strict=False):
                rows.append(
                    {
                        "figure": "4 scale",
                        "ratio": f"logins/s {store} / provider alone @ {run['users']} users",
                        "median": run["logins_per_s"] / ref["logins_per_s"],
                        "q1": float("nan"),
                        "q3": float("nan"),
                        "min": float("nan"),
                        "max": float("nan"),
                        "n": 1,
                        "target": "0 errors",
                        "met": "yes" if run["errors"] == 0 else f"no ({run['errors']} errors)",
                    }
                )
    fp = results.get("footprint")
    if fp:
        rows.append(
            {
                "figure": "5 footprint",
                "ratio": "cookie bytes per browser (module)",
                "median": fp["cookie_header_bytes"],
                "q1": float("nan"),
                "q3": float("nan"),
                "min": float("nan"),
                "max": float("nan"),
                "n": 1,
                "target": "< 300",
                "met": "yes" if fp["cookie_header_bytes"] < 300 else "no",
            }
        )
    return rows


def _fmt(value: float, digits: int = 3) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def write_markdown(results: dict[str, Any], out: Path) -> None:
    m = results["machine"]
    plan = results["plan"]
    lines = [
        "# Benchmark results" + (" (QUICK smoke run: too short to quote)" if plan["quick"] else ""),
        "",
        f"Date: {m['date']}. Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, "
        f"{m['os']}. Python {m['python']}, Dash {m['packages']['dash']}, gunicorn "
        f"{m['packages']['gunicorn']}, Flask {m['packages']['flask']}, authlib "
        f"{m['packages']['authlib']}, dash-auth {m['packages']['dash-auth']}, "
        f"opentelemetry-sdk {m['packages']['opentelemetry-sdk']}; provider: node {m['node']}, "
        f"oidc-provider {m['oidc-provider']}; {m['redis-server'].split(' sha')[0]}; "
        f"{m['wrk'].split(' [')[0]}. Library at git {m['git']}.",
        "",
        f"Total run time: {results['elapsed_s'] / 60:.1f} min.",
        "",
        "## Figures",
        "",
        "Each ratio is computed per round from measurements taken back to back, then summarised "
        "over the rounds (median, interquartile range, min-max).",
        "",
        "| Figure | Ratio | Median | IQR | Min-max | Rounds | Target | Met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["figures"]:
        iqr = "-" if r["q1"] != r["q1"] else f"{_fmt(r['q1'])}-{_fmt(r['q3'])}"
        spread = "-" if r["min"] != r["min"] else f"{_fmt(r['min'])}-{_fmt(r['max'])}"
        lines.append(
            f"| {r['figure']} | {r['ratio']} | **{_fmt(r['median'])}** | {iqr} | {spread} | "
            f"{r['n']} | {r['target']} | {r['met']} |"
        )
    gl = results.get("guard_login")
    if gl:
        elsewhere = {n: lib for n, lib in gl.get("libraries", {}).items() if "patched" in n}
        if elsewhere:
            lines += [
                "",
                "Patched variants served from: "
                + ", ".join(f"{LABELS.get(n, n)}: `{lib}`" for n, lib in elsewhere.items()),
            ]
        lines += [
            "",
            f"## 1 and 3: guard ({len(next(iter(gl['guard_runs'].values())))} rounds x "
            f"{plan['guard_seconds']:g} s of wrk, {plan['guard_connections']} connections, "
            f"gunicorn -w {plan['guard_workers']} sync; "
            f"{len(gl['guard_disturbed_rounds'])} rounds disturbed by other processes)",
            "",
            "| Variant | req/s median | req/s min-max | server CPU us/request | p50 ms | p99 ms "
            "| other processes' CPU |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, runs in gl["guard_runs"].items():
            rps = summary([r["rps"] for r in runs])
            cpu = summary([r["server_cpu_us_per_request"] for r in runs])
            p50 = summary([r["latency"].get("p50", float("nan")) * 1000 for r in runs])
            p99 = summary([r["latency"].get("p99", float("nan")) * 1000 for r in runs])
            other = summary([r["foreign_cpu_share"] for r in runs])
            errors = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
            lines.append(
                f"| {LABELS.get(name, name)} | {rps['median']:.0f} | "
                f"{rps['min']:.0f}-{rps['max']:.0f} | "
                f"{cpu['median']:.0f} | {p50['median']:.2f} | {p99['median']:.2f} | "
                f"{other['median']:.0%} (max {other['max']:.0%}) |"
                + (f" {errors} errors" if errors else "")
            )
        if gl["login_runs"]:
            lines += [
                "",
                "## 2 and 3: login round trip "
                f"({len(next(iter(gl['login_runs'].values())))} rounds "
                f"x {plan['login_count']} sequential logins per variant, a fresh browser each; "
                f"{len(gl['login_disturbed_rounds'])} rounds disturbed by other processes)",
                "",
                "| Variant | round trip ms (median of round means) | min-max | app ms "
                "| provider ms | app server CPU ms | provider CPU ms | requests per login |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for name, runs in gl["login_runs"].items():
                total = summary([r["mean_ms"] for r in runs])
                app = summary([r["app_mean_ms"] for r in runs])
                prov = summary([r["provider_mean_ms"] for r in runs])
                app_cpu = summary([r["app_cpu_ms"] for r in runs])
                prov_cpu = summary([r["provider_cpu_ms"] for r in runs])
                lines.append(
                    f"| {LABELS.get(name, name)} | {total['median']:.1f} | {total['min']:.1f}-"
                    f"{total['max']:.1f} | {app['median']:.1f} | {prov['median']:.1f} | "
                    f"{app_cpu['median']:.2f} | {prov_cpu['median']:.2f} | {runs[0]['requests']} |"
                )
    sc = results.get("scale")
    if sc:
        lines += [
            "",
            f"## 4: scale (gunicorn -w {plan['scale_workers']} sync, closed loop, "
            f"{plan['scale_warmup']:g} s warm-up then {plan['scale_duration']:g} s measured)",
            "",
            "| Store | Users | logins/s | p50 s | p99 s | errors | CPU share app / provider / "
            "generator / redis / other processes (of all cores) |",
            "|---|---|---|---|---|---|---|",
        ]
        for store, runs in sc["runs"].items():
            for r in runs:
                share = r["cpu_share"]
                lines.append(
                    f"| {'provider alone' if store == 'provider' else store} | {r['users']} | "
                    f"{r['logins_per_s']:.1f} | {r['p50_s']:.2f} | {r['p99_s']:.2f} | "
                    f"{r['errors']} | {share['app']:.0%} / {share['provider']:.0%} / "
                    f"{share['generator']:.0%} / {share['redis']:.0%} / {share['other']:.0%} |"
                )
        lines += ["", "![scale](scale.png)"]
    fp = results.get("footprint")
    if fp:
        before = fp["rss_before"]
        after = fp["rss_after"]
        lines += [
            "",
            f"## 5: footprint ({fp['sessions']} sessions, gunicorn -w {plan['scale_workers']}, "
            "diskcache)",
            "",
            f"- Cookie header per browser after login: **{fp['cookie_header_bytes']} bytes** "
            f"({', '.join(f'{k}: {v}-byte value' for k, v in fp['cookies'].items())}).",
            f"- Session record in the store: {fp['record_value_bytes']} bytes sealed "
            f"(+ {fp['record_key_bytes']}-byte key); {fp['record_json_bytes']} bytes of JSON "
            f"before sealing; tokens: "
            + ", ".join(f"{k} {v}" for k, v in fp["token_parts_bytes"].items())
            + ".",
            f"- diskcache (SQLite) growth: {fp['diskcache_bytes_per_session']:.0f} bytes per "
            f"session on disk.",
        ]
        if "redis_used_memory_per_session" in fp:
            lines.append(
                f"- Redis: {fp['redis_used_memory_per_session']:.0f} bytes of used_memory per "
                f"session ({fp['redis_sessions']} sessions); MEMORY USAGE of one key "
                f"{fp['redis_memory_usage_key']} bytes."
            )
        lines.append(
            "- Resident memory per worker (RSS / PSS / USS MiB; USS is the worker's private "
            "memory, RSS also counts shared pages such as SQLite's memory-mapped database), "
            "warm with one session -> after "
            f"{fp['sessions']} sessions each used at least once "
            f"({fp['wrk_many_sessions']['requests']} requests at "
            f"{fp['wrk_many_sessions']['rps']:.0f} req/s): "
            + "; ".join(
                f"{_mib(b['rss'])}/{_mib(b['pss'])}/{_mib(b['uss'])} -> "
                f"{_mib(a['rss'])}/{_mib(a['pss'])}/{_mib(a['uss'])}"
                for b, a in zip(
                    sorted(before, key=lambda x: x["pid"]),
                    sorted(after, key=lambda x: x["pid"]),
                    strict=False,
                )
            )
            + "."
        )
        lines.append(
            f"- Sweeper cost at {fp['sweep_decoded']} sessions: a full scan and decode takes "
            f"{fp['sweep_decode_seconds']:.2f} s (once per sweep interval, in one worker)."
        )
    pr = results.get("profile")
    if pr:
        g = pr["guard"]
        lines += [
            "",
            "## Profiles (pyinstrument, in process, Flask test client)",
            "",
            f"- Guard: {g['us_per_request_module']:.0f} us per authenticated callback request "
            f"vs {g['us_per_request_noauth']:.0f} us without auth (Flask test client, no "
            f"server): the module adds {g['guard_us_unprofiled']:.0f} us. Shares of the "
            "guard's profiled time: "
            + ", ".join(f"{k} {v:.0%}" for k, v in g["shares_of_guard"].items())
            + " (the custom_data hook runs outside the guard, in Dash's dispatch). "
            "See profile-guard.txt.",
            "- Steps of the guard timed alone in a loop (us per call, caches warm: a lower "
            "bound of their cost inside a request): "
            + "; ".join(f"{k.strip()} {v:.1f}" for k, v in g.get("steps_us", {}).items())
            + ".",
            f"- OAuth login start: {pr['login']['ms_per_request_profiled']:.1f} ms per request "
            "(wall, profiled, includes the PAR round trip); callback: "
            f"{pr['callback']['ms_per_request_profiled']:.1f} ms per request (wall, profiled, "
            "includes the token and userinfo round trips). See profile-login.txt and "
            "profile-callback.txt.",
        ]
    made = [n for n in ("guard.png", "login.png", "scale.png") if _will_plot(results, n)]
    lines += ["", "Plots: " + ", ".join(made) + ".", ""]
    (out / "results.md").write_text("\n".join(lines))


def _will_plot(results: dict[str, Any], name: str) -> bool:
    gl = results.get("guard_login") or {}
    if name == "guard.png":
        return bool(gl.get("guard_runs"))
    if name == "login.png":
        return bool(gl.get("login_runs"))
    return bool(results.get("scale"))


LABELS = {
    "noauth": "no auth",
    "module": "module (diskcache)",
    "module_otel": "module + OTel SDK",
    "module_redis": "module (Redis)",
    "module_plain": "module, no PAR/userinfo",
    "module_patched": "module, patched",
    "module_patched_otel": "module, patched + OTel SDK",
    "dashauth": "dash-auth OIDCAuth",
    "authlib": "authlib Flask client",
}


def plots(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gl = results.get("guard_login")
    if gl:
        names = list(gl["guard_runs"])
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, key, title in (
            (axes[0], "rps", "Authenticated callback: requests/s (higher is better)"),
            (axes[1], "server_cpu_us_per_request", "Server CPU per request, us (lower is better)"),
        ):
            stats = [summary([r[key] for r in gl["guard_runs"][n]]) for n in names]
            med = [s["median"] for s in stats]
            err = [[s["median"] - s["min"] for s in stats], [s["max"] - s["median"] for s in stats]]
            ax.bar([LABELS.get(n, n) for n in names], med, yerr=err, capsize=4, color="#4c72b0")
            ax.set_title(title, fontsize=10)
            ax.tick_params(axis="x", rotation=30, labelsize=8)
        fig.tight_layout()
        fig.savefig(out / "guard.png", dpi=110)
        plt.close(fig)

        if gl["login_runs"]:
            names = list(gl["login_runs"])
            app = [
                summary([r["app_mean_ms"] for r in gl["login_runs"][n]])["median"] for n in names
            ]
            prov = [
                summary([r["provider_mean_ms"] for r in gl["login_runs"][n]])["median"]
                for n in names
            ]
            total = [summary([r["mean_ms"] for r in gl["login_runs"][n]]) for n in names]
            fig, ax = plt.subplots(figsize=(8, 4))
            labels = [LABELS.get(n, n) for n in names]
            ax.bar(
                labels, app, label="app requests (incl. its back-channel calls)", color="#dd8452"
            )
            ax.bar(
                labels, prov, bottom=app, label="browser requests to the provider", color="#4c72b0"
            )
            ax.errorbar(
                labels,
                [t["median"] for t in total],
                yerr=[
                    [t["median"] - t["min"] for t in total],
                    [t["max"] - t["median"] for t in total],
                ],
                fmt="k.",
                capsize=4,
                label="round trip (median, min-max)",
            )
            ax.set_ylabel("ms per login (sequential)")
            ax.set_title("Login round trip against the local provider", fontsize=10)
            ax.tick_params(axis="x", rotation=30, labelsize=8)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(out / "login.png", dpi=110)
            plt.close(fig)

    sc = results.get("scale")
    if sc:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for store, runs in sc["runs"].items():
            label = (
                "provider alone (generator as RP)" if store == "provider" else f"module, {store}"
            )
            users = [r["users"] for r in runs]
            axes[0].plot(users, [r["logins_per_s"] for r in runs], marker="o", label=label)
            axes[1].plot(users, [r["p99_s"] for r in runs], marker="o", label=label)
        axes[0].set_title("Logins per second", fontsize=10)
        axes[1].set_title("p99 login round trip (s)", fontsize=10)
        for ax in axes:
            ax.set_xlabel("concurrent users")
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(sc["levels"])
            ax.set_xticklabels([str(u) for u in sc["levels"]])
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        fig.suptitle(
            f"gunicorn -w {results['plan']['scale_workers']}, one shared provider, "
            f"{results['machine']['nproc']} CPUs",
            fontsize=10,
        )
        fig.tight_layout()
        fig.savefig(out / "scale.png", dpi=110)
        plt.close(fig)


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--only",
        default="guard,login,scale,footprint,profile",
        help="comma-separated subset of guard (figures 1, 3), login (2, 3), scale (4), "
        "footprint (5), profile",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--patched",
        type=Path,
        help="also serve the module from this copy of the repository (a candidate patch)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite results.md and the plots from --out/results.json",
    )
    parser.add_argument("--guard-rounds", type=int, help="override the number of guard rounds")
    parser.add_argument("--guard-seconds", type=float, help="override the seconds per wrk run")
    args = parser.parse_args(argv)
    if args.render:
        out = Path(args.out)
        results = json.loads((out / "results.json").read_text())
        results["figures"] = figures(results)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        write_markdown(results, out)
        plots(results, out)
        print((out / "results.md").read_text())
        return
    for tool in ("wrk", "node"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (apt-get install wrk; Node.js 20+)")
    only = set(args.only.split(","))
    plan = Plan.quick_plan() if args.quick else Plan.full()
    _quiet_budget[0] = 20.0 if args.quick else 150.0
    if args.guard_rounds:
        plan = replace(plan, guard_rounds=args.guard_rounds)
    if args.guard_seconds:
        plan = replace(plan, guard_seconds=args.guard_seconds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    redis = infra.redis_available()
    if not redis:
        log("Redis is not answering on 127.0.0.1:6379: Redis variants are skipped")
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "plan": asdict(plan), "redis": redis}
    work = infra.workdir()
    provider = infra.start_provider(work)
    log(f"provider at {provider.issuer}; work directory {work}")
    try:
        if "guard" in only or "login" in only:
            results["guard_login"] = guard_and_login(
                plan, provider, work, redis=redis, patched=args.patched, logins="login" in only
            )
        if "scale" in only:
            results["scale"] = scale(plan, provider, work, redis=redis)
        if "footprint" in only:
            results["footprint"] = footprint(plan, provider, work, redis=redis)
        if "profile" in only:
            log("profiling the guard, the login start and the callback")
            results["profile"] = profiles(plan, provider, work, out)
        results["provider_rss_end"] = _provider_rss(provider)
    finally:
        provider.stop()
        infra.remove(work)
    results["elapsed_s"] = time.perf_counter() - started
    results["figures"] = figures(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_markdown(results, out)
    plots(results, out)
    log(f"done in {results['elapsed_s'] / 60:.1f} min: {out / 'results.md'}")
    print((out / "results.md").read_text())


def _provider_rss(provider: Any) -> int:
    import psutil

    try:
        return int(psutil.Process(provider._process.pid).memory_info().rss)
    except Exception:
        return 0


if __name__ == "__main__":
    main()
