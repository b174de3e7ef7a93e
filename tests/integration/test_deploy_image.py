"""The serving image: built with deploy/docker/build.sh, run as Kubernetes runs it, /readyz 200,
a prediction, no torch inside. Skips unless a Docker daemon answers (never in CI).

Set PQC_DEPLOY_IMAGE to test an image built already, PQC_DEPLOY_BASE_IMAGE to build on another
base (e.g. pqcompress-base:bookworm from make_base.sh where registries cannot be reached).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        out = subprocess.run(["docker", "version"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0


requires_docker = pytest.mark.skipif(not _docker_answers(), reason="no Docker daemon answers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if os.environ.get("PQC_DEPLOY_IMAGE"):
        return os.environ["PQC_DEPLOY_IMAGE"]
    tag = "pqcompress-serve:test"
    base = os.environ.get("PQC_DEPLOY_BASE_IMAGE", "python:3.11-slim")
    out = subprocess.run(
        ["bash", str(DOCKER / "build.sh"), "--tag", tag, "--base", base],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHON_BIN": sys.executable},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return tag


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from pqcompress import codec
    from pqcompress.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn5", num_classes=10, input_shape=(1, 8, 8)).eval()
    out = tmp_path_factory.mktemp("models")
    codec.save(
        model,
        out / "model.pqz",
        onnx="float32",
        model_name="cnn5",
        num_classes=10,
        input_shape=(1, 8, 8),
    )
    out.chmod(0o755)
    (out / "model.pqz").chmod(0o644)
    return out


@pytest.fixture(scope="module")
def service(image: str, model_dir: Path) -> Iterator[str]:
    port = _free_port()
    name = f"pqc-deploy-test-{port}"
    _docker(
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-p",
        f"127.0.0.1:{port}:8080",
        "-v",
        f"{model_dir}:/models:ro",
        image,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            running = _docker("inspect", "--format", "{{.State.Running}}", name)
            assert running == "true", _docker("logs", name)
            assert time.monotonic() < deadline, "not ready within 120 s"
            time.sleep(0.1)
        yield url
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


@requires_docker
def test_image_serves_a_prediction(service: str) -> None:
    body = json.dumps({"inputs": [[[[0.0] * 8] * 8]]}).encode()
    req = urllib.request.Request(
        f"{service}/v1/predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        answer = json.loads(resp.read())
    assert len(answer["predictions"]) == 1
    with urllib.request.urlopen(f"{service}/healthz", timeout=5) as resp:
        assert resp.status == 200


@requires_docker
def test_image_has_no_torch_and_runs_as_uid_10001(image: str) -> None:
    probe = "import importlib.util as u, os; print([m for m in ('torch', 'numba', 'sklearn') if u.find_spec(m)], os.getuid())"
    out = _docker("run", "--rm", "--entrypoint", "python3", image, "-c", probe)
    assert out == "[] 10001"
