"""deploy/k8s: every kustomization renders, validates strictly, and keeps the serving policy."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kustomize_lite import UnsupportedKustomization, render

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = [K8S / "base", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
OVERLAYS = KUSTOMIZATIONS[1:]
MEASURED = json.loads((K8S / "measured.json").read_text())
# the latest schema kubernetes-validate ships, and an older release still in common use (the
# validator is imported only by the tests that use it: the others run without it)
K8S_VERSIONS = ("latest", "1.30.0")
IMAGE_UID = 10001
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}


def _quantity(text: str | int | float) -> float:
    s = str(text)
    for unit in sorted(_UNITS, key=len, reverse=True):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * _UNITS[unit]
    return float(s)


def _by_kind(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [r["kind"] for r in resources]
    assert len(kinds) == len(set(kinds)), f"one resource per kind expected, got {kinds}"
    return {r["kind"]: r for r in resources}


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(K8S).as_posix() for p in paths]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_there_is_one_overlay_per_variant() -> None:
    names = {p.name for p in OVERLAYS}
    assert {"vgg16-float32", "vgg16-int8-uniform", "vgg16-8bit-deadzone"} <= names


def _schema_version(version: str) -> str:
    import kubernetes_validate

    return kubernetes_validate.latest_version() if version == "latest" else version


@pytest.mark.requires("kubernetes_validate")
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_manifest_validates_strictly(
    rendered: list[dict[str, Any]], version: str
) -> None:
    import kubernetes_validate

    assert {r["kind"] for r in rendered} == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for resource in rendered:
        kubernetes_validate.validate(resource, _schema_version(version), strict=True)


@pytest.mark.requires("kubernetes_validate")
def test_strict_validation_rejects_a_misspelt_field() -> None:
    import kubernetes_validate

    deployment = _by_kind(render(K8S / "base"))["Deployment"]
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, _schema_version("latest"), strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def test_renderer_matches_kubectl_kustomize(directory: Path) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(out.stdout)}
    ours = {(r["kind"], r["metadata"]["name"]): r for r in render(directory)}
    assert ours == theirs


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nreplicas: [{name: x, count: 2}]\n")
    with pytest.raises(UnsupportedKustomization, match="replicas"):
        render(tmp_path)


def test_probes_ports_and_scrape_annotations(rendered: list[dict[str, Any]]) -> None:
    kinds = _by_kind(rendered)
    pod = kinds["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    assert (
        "--port" in container["args"]
        and container["args"][container["args"].index("--port") + 1] == "8080"
    )
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/path"] == "/metrics"
    assert int(notes["prometheus.io/port"]) == ports["http"]
    service = kinds["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    selector = service["spec"]["selector"]
    assert selector and selector.items() <= pod["metadata"]["labels"].items()
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == selector


def test_autoscaler_as_the_studies(rendered: list[dict[str, Any]]) -> None:
    kinds = _by_kind(rendered)
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["maxReplicas"] == 10
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": kinds["Deployment"]["metadata"]["name"],
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 20}
    # utilisation is relative to the request: every container must request CPU
    for c in kinds["Deployment"]["spec"]["template"]["spec"]["containers"]:
        assert _quantity(c["resources"]["requests"]["cpu"]) > 0


def test_limits_cover_requests(rendered: list[dict[str, Any]]) -> None:
    pod = _by_kind(rendered)["Deployment"]["spec"]["template"]["spec"]
    for c in pod["containers"]:
        requests, limits = c["resources"]["requests"], c["resources"]["limits"]
        assert set(requests) == set(limits) == {"cpu", "memory"}
        for key in requests:
            assert _quantity(limits[key]) >= _quantity(requests[key]), key


def test_runs_unprivileged_as_the_image_user(rendered: list[dict[str, Any]]) -> None:
    pod = _by_kind(rendered)["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts  # the one writable path (Prometheus multi-process files)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def test_memory_holds_the_measured_figures(directory: Path) -> None:
    """Requests hold the steady resident memory measured for the variant, limits its peak
    (reached while the model loads) with 25 % headroom (docs/deploy.md, "Resources")."""
    figures = MEASURED["variants"][directory.name]
    (c,) = _by_kind(render(directory))["Deployment"]["spec"]["template"]["spec"]["containers"]
    request = _quantity(c["resources"]["requests"]["memory"])
    limit = _quantity(c["resources"]["limits"]["memory"])
    assert request >= figures["rss_after_load_mib"] * 2**20
    assert limit >= 1.25 * figures["rss_peak_mib"] * 2**20
    assert (c["resources"]["requests"]["memory"], c["resources"]["limits"]["memory"]) == (
        figures["memory_request"],
        figures["memory_limit"],
    )


def test_overlays_are_distinct_variants() -> None:
    seen: dict[str, set[str]] = {"name": set(), "image": set(), "variant": set()}
    for overlay in OVERLAYS:
        kinds = _by_kind(render(overlay))
        dep = kinds["Deployment"]
        pod = dep["spec"]["template"]
        seen["name"].add(dep["metadata"]["name"])
        seen["image"].add(pod["spec"]["containers"][0]["image"])
        variant = pod["metadata"]["labels"]["pqcompress.io/variant"]
        assert variant == overlay.name
        seen["variant"].add(variant)
        assert dep["spec"]["selector"]["matchLabels"]["pqcompress.io/variant"] == variant
        assert kinds["Service"]["spec"]["selector"]["pqcompress.io/variant"] == variant
    assert all(len(v) == len(OVERLAYS) for v in seen.values()), seen
