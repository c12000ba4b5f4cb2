"""The benchmark harness: its committed results are what it renders, its apps still build.

The benchmarks themselves run on demand (``bash scripts/bench``), never here;
these tests only keep the harness and its committed results consistent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks import apps
from benchmarks import run

RESULTS = Path(run.ROOT) / "benchmarks" / "results"


def test_results_md_is_rendered_from_results_json(tmp_path: Path) -> None:
    shutil.copy(RESULTS / "results.json", tmp_path / "results.json")
    run.main(["--render", "--out", str(tmp_path)])
    # The ratios are recomputed from the raw measurements of every round.
    assert (tmp_path / "results.md").read_text() == (RESULTS / "results.md").read_text()
    for plot in ("guard.png", "login.png", "scale.png"):
        assert (tmp_path / plot).stat().st_size > 10_000


def test_every_figure_in_the_results_has_a_verdict() -> None:
    figures = json.loads((RESULTS / "results.json").read_text())["figures"]
    targeted = [f for f in figures if f.get("target") not in (None, "-")]
    assert len(targeted) >= 7
    assert {f["met"] for f in targeted} <= {"yes", "no"}


def _env(idp, variant: str, store: Path, callback_path: str) -> dict[str, str]:
    origin = "http://127.0.0.1:9"
    registered = idp.register_client([origin + callback_path])
    return {
        "BENCH_VARIANT": variant,
        "BENCH_ORIGIN": origin,
        "BENCH_ISSUER": idp.issuer,
        "BENCH_CLIENT_ID": registered.client_id,
        "BENCH_CLIENT_SECRET": registered.client_secret or "",
        "BENCH_SECRET": "bench-secret-Gx5Wq8Zr3Lm9Vt2Bn7Yc4Pd6Hf1Kj",
        "BENCH_STORE": f"diskcache:{store}",
    }


def test_each_benchmarked_app_serves_the_callback_its_way(idp, tmp_path: Path) -> None:
    def post(server):  # type: ignore[no-untyped-def]
        return server.test_client().post(
            "/_dash-update-component", data=apps.CALLBACK_BODY, content_type="application/json"
        )

    noauth = apps.build({"BENCH_VARIANT": "noauth"}).server
    assert b"clicks=1" in post(noauth).data
    module = apps.build(_env(idp, "module", tmp_path / "m", "/oauth/callback")).server
    refused = post(module)
    assert refused.status_code == 200 and b"sideUpdate" in refused.data  # sent to sign in
    dashauth = apps.build(_env(idp, "dashauth", tmp_path / "d", "/oidc/idp/callback")).server
    assert b"clicks=1" not in post(dashauth).data
    authlib = apps.build(_env(idp, "authlib", tmp_path / "a", "/auth/callback")).server
    assert authlib.test_client().get("/auth/login").status_code == 302
