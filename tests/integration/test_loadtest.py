"""Load tests end to end: Locust drives a real `pqcompress serve` on 127.0.0.1 with short
open-model profiles; the summaries are checked against the service's own counters, and CPU
and memory against a real Prometheus (when its binary is installed)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
from serve_support import Server, build_served_model

from pqcompress import proctree

# every test here drives the load test (its client library is httpx, imported by
# pqcompress.loadtest) or its CLI, so each is skipped on its own without httpx and the module
# imports pqcompress.loadtest inside the tests; the service's own packages are needed only
# where a service starts (the `built` fixture)
pytestmark = [pytest.mark.integration, pytest.mark.requires("httpx")]
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="no prometheus binary (Debian: prometheus)"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The served model; skips the tests that start a service when its packages are missing."""
    pytest.importorskip("fastapi")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("prometheus_client")
    # never import locust here: it patches the standard library for gevent on import (the
    # load generator runs in its own process for that reason)
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed (pip install pqcompress[load])")
    return build_served_model(tmp_path_factory.mktemp("loadtest-model"))


@pytest.fixture(scope="module")
def payloads():
    from pqcompress.loadtest import dataset_payloads

    return dataset_payloads("digits", 16)


def _counters(srv: Server) -> dict[tuple[str, str], float]:
    """The service's own request counters: (route, status) -> count."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(srv.client.get("/metrics").text):
        for s in fam.samples:
            if s.name == "pqc_http_requests_total":
                key = (s.labels["route"], s.labels["status"])
                out[key] = out.get(key, 0.0) + s.value
    return out


def _metric(srv: Server, name: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(srv.client.get("/metrics").text):
        for s in fam.samples:
            if s.name == name:
                return s.value
    return None


def test_rate_profile_summary_matches_the_service_counters(built, payloads, tmp_path):
    from pqcompress.loadtest import RateProfile, run_loadtest

    srv = Server(built["path"]).wait_ready()
    try:
        before = _counters(srv)
        out = tmp_path / "lt"
        result = run_loadtest(
            srv.url, RateProfile(rps=15, duration_s=3), payloads, out_dir=out, prometheus="off"
        )
        after = _counters(srv)
    finally:
        srv.stop()
    s = result.summary
    answered = after.get(("/v1/predict", "200"), 0) - before.get(("/v1/predict", "200"), 0)
    assert s["ok"] == answered > 10  # every success the client saw, the service counted
    assert s["requests"] == s["ok"] + s["errors_total"] and s["errors_total"] == 0
    assert not result.failed
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert {"requests", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "p95_sd_ms",
            "errors"} <= set(s)  # fmt: skip
    assert set(s["errors"]) >= {"connection", "4xx", "shed_503", "timeout_504", "5xx"}
    assert "cpu_millicores" not in s  # not monitored
    saved = json.loads((out / "summary.json").read_text())
    assert saved["ok"] == s["ok"]
    rows = json.loads((out / "history.json").read_text())
    assert sum(r["requests"] for r in rows) == s["requests"]
    assert max(r["users"] for r in rows) == 2  # 15 rps over streams of <= 10 rps
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header.startswith("second,users,requests,ok,errors,p50_ms,p95_ms,p99_ms")


def test_shedding_is_documented_and_other_errors_fail_the_run(built, payloads, tmp_path):
    """A service that holds one request at a time for 0.2 s sheds most of 20 rps with 503:
    counted as shed_503 (the service's rejected counter agrees), and the run does not fail;
    bodies the service refuses (422) are errors that do: the CLI exits 1."""
    from pqcompress.loadtest import RateProfile, run_loadtest

    srv = Server(
        built["path"], "--max-in-flight", "1", env={"PQC_DEBUG": "1", "PQC_DEBUG_DELAY_S": "0.2"}
    ).wait_ready()
    try:
        shed_before = _metric(srv, "pqc_predict_rejected_total") or 0.0
        result = run_loadtest(srv.url, RateProfile(rps=20, duration_s=2), payloads)
        shed_after = _metric(srv, "pqc_predict_rejected_total") or 0.0
        s = result.summary
        assert s["errors"]["shed_503"] > 0 and s["ok"] > 0
        assert s["errors"]["shed_503"] == shed_after - shed_before
        assert s["undocumented_errors"] == 0 and not result.failed
        bad = tmp_path / "bad.json"
        bad.write_text('{"inputs": "not a tensor"}')
        cli = subprocess.run(
            [sys.executable, "-m", "pqcompress.cli.main", "loadtest", srv.url, "--profile",
             "rate", "--rps", "4", "--duration", "1.5", "--payload", str(bad), "--prometheus",
             "off", "--out", str(tmp_path / "cli")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        srv.stop()
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "4xx" in cli.stdout and "beyond documented shedding" in cli.stdout
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["errors"]["4xx"] == summary["requests"] > 0


def test_cli_refuses_bad_lines_in_one_line(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pqcompress.cli.main", "loadtest", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n")
    for args, message in (
        (("--profile", "rate", "--rps", "5"), "needs --rps R and --duration S"),
        (("--payload", str(png), "--prometheus", "http://127.0.0.1:9"), "does not answer"),
        (
            (
                "http://127.0.0.1:9",
                "--payload",
                str(png),
                "--prometheus",
                "off",
                "--ready-timeout",
                "0.5",
            ),
            "not ready",
        ),
        (("--peak-users", "0", "--payload", "x.png"), "peak_users"),
        (("ftp://x", "--payload", str(tmp_path / "none.png")), "is not a file"),
        (("http://127.0.0.1:9", "--dataset", "digits", "--payload-count", "0"), "count"),
    ):
        out = run(*args)
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


@needs_prometheus
def test_a_real_prometheus_reads_cpu_and_memory_of_all_workers(built, payloads, tmp_path):
    """--workers 2: the service's pqc_service_* cover the supervisor and both workers (the
    process tree read here agrees), and the load test's CPU and memory come from Prometheus:
    memory near what /proc says, CPU above zero, the Prometheus-stored request counter equal
    to the client's successes."""
    from pqcompress.loadtest import RampProfile, run_loadtest

    srv = Server(built["path"], "--workers", "2").wait_ready()
    try:
        tree = proctree.process_tree(srv.proc.pid)
        assert len(tree) >= 3  # supervisor + 2 workers (the resource tracker may add one)
        exported = _metric(srv, "pqc_service_resident_memory_bytes")
        _cpu, rss = proctree.tree_usage(srv.proc.pid)
        assert exported == pytest.approx(rss, rel=0.25)
        before = sum(v for (r, st), v in _counters(srv).items() if r == "/v1/predict")
        profile = RampProfile(peak_users=6, ramp_up_s=2, hold_s=3, ramp_down_s=1, user_rps=3)
        result = run_loadtest(
            srv.url, profile, payloads, out_dir=tmp_path / "mon", prometheus="auto"
        )
        after = sum(v for (r, st), v in _counters(srv).items() if r == "/v1/predict")
    finally:
        srv.stop()
    s = result.summary
    assert s["errors_total"] == 0 and s["ok"] > 20
    assert after - before == s["requests"]  # multiprocess counters: both workers' requests
    assert s["cpu_millicores"] > 0 and s["cpu_millicores_peak"] >= s["cpu_millicores"] * 0.5
    assert s["memory_mib"] == pytest.approx(rss / 2**20, rel=0.3)
    assert "pqc_service_cpu_seconds_total" in s["queries"]["cpu_millicores"]
    rows = json.loads((tmp_path / "mon" / "history.json").read_text())
    assert any(r.get("memory_mib") for r in rows) and "cpu_millicores" in rows[0]


@needs_prometheus
def test_bench_serving_stores_every_figure_and_the_report_renders(built, tmp_path):
    spec = tmp_path / "bench.yaml"
    spec.write_text(
        "name: tiny\n"
        "payloads: {dataset: digits, count: 8}\n"
        "ready_repeats: 2\nwarmup_requests: 3\ncooldown_s: 0\n"
        "env: {OMP_NUM_THREADS: '1'}\n"
        "variants:\n"
        f"  - {{name: f32, model: '{built['path']}', bits: 32, alpha: 0.0, "
        "serve: {runtime: torch}}\n"
        f"  - {{name: i8, model: '{built['path']}', bits: 8, alpha: 0.5, serve: {{int8: true}}}}\n"
        "profiles:\n"
        "  - {name: r10, kind: rate, rps: 10, duration_s: 2}\n"
    )
    store = tmp_path / "results.db"
    cmd = [sys.executable, "-m", "pqcompress.cli.main", "bench-serving", str(spec), "--store",
           str(store)]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "every profile already measured" in again.stdout
    from pqcompress.results.serving import ServingStore

    with ServingStore(store) as st:
        runs, ready = st.runs("tiny"), st.ready("tiny")
    assert [(r["variant"], r["profile"]) for r in runs] == [("f32", "r10"), ("i8", "r10")]
    assert len(ready) == 4 and all(r["ready_s"] > 0 and r["rss_ready_mib"] > 0 for r in ready)
    assert all(r["summary"]["memory_mib"] > 0 for r in runs)
    for r in runs:  # the service's own figures beside the open-model ones
        s = r["summary"]
        assert 0 < s["closed_loop_p50_ms"] <= s["closed_loop_p95_ms"]
        at_ready = max(x["rss_ready_mib"] for x in ready if x["variant"] == r["variant"])
        assert s["peak_memory_mib"] >= 0.8 * at_ready  # lifetime peak (another process)
        assert s["model"]["params"] > 0
    out = tmp_path / "report"
    rep = subprocess.run(
        [sys.executable, "-m", "pqcompress.cli.main", "report", str(store), "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    text = (out / "serving_report.md").read_text()
    assert "Table V" in text and "Table VI" in text and "ready" in text
    assert "closed-loop p50/p95 ms" in text and "MiB lifetime peak" in text
    table = json.loads((out / "table_vi_resources.json").read_text())
    assert {r["variant"] for r in table["records"]} == {"f32", "i8"}
    assert (out / "timeline_r10.png").is_file() and (out / "bars_per_variant.png").is_file()
