"""deploy/prometheus: the scrape configuration finds the pods the manifests annotate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def test_pod_job_keeps_annotated_service_pods() -> None:
    jobs = {j["job_name"]: j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    pods = jobs["pqcompress-pods"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    keeps = {
        r["source_labels"][0]: r["regex"]
        for r in pods["relabel_configs"]
        if r.get("action") == "keep"
    }
    assert keeps == {
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "pqcompress-serve",
    }
    targets = {r.get("target_label") for r in pods["relabel_configs"]}
    assert {"__metrics_path__", "__address__", "variant"} <= targets


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery: there, the rest of the file is
    checked (the pod job's schema is then covered by the test above only)."""
    out = _promtool(CONFIG)
    if "field kubernetes_sd_configs not found" in out.stdout + out.stderr:
        config = yaml.safe_load(CONFIG.read_text())
        config["scrape_configs"] = [
            j for j in config["scrape_configs"] if "kubernetes_sd_configs" not in j
        ]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        out = _promtool(tmp_path / "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def _promtool(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
