"""deploy/docker: the serving image's Dockerfile and its pinned, torch-free requirements."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "deploy" / "docker"
EXCLUDED = {
    "torch",
    "numba",
    "scikit-learn",
    "rich",
}  # core dependencies the served path never imports


def _instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pins() -> dict[str, str]:
    pins = {}
    for line in (DOCKER / "requirements-serve.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"'{line}' must be pinned with =="
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_dockerfile_is_multi_stage_with_a_base_image_argument() -> None:
    ins = _instructions()
    first_from = next(i for i, (word, _) in enumerate(ins) if word == "FROM")
    args = [rest for word, rest in ins[:first_from] if word == "ARG"]
    assert any(a.startswith("BASE_IMAGE=python:3.") and "slim" in a for a in args), args
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2 and all(f.startswith("${BASE_IMAGE}") for f in froms), froms
    assert any(word == "COPY" and rest.startswith("--from=build") for word, rest in ins)


def test_runtime_stage_runs_the_service_unprivileged() -> None:
    ins = _instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    runtime = ins[last_from:]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1] == "10001:10001"  # numeric: runAsNonRoot can verify it
    assert ("EXPOSE", "8080") in runtime
    health = next(rest for word, rest in runtime if word == "HEALTHCHECK")
    assert "/readyz" in health
    entry = json.loads(next(rest for word, rest in runtime if word == "ENTRYPOINT"))
    cmd = json.loads(next(rest for word, rest in runtime if word == "CMD"))
    assert entry + cmd == [
        "pqcompress",
        "serve",
        "/models/model.pqz",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]


def test_install_is_offline_from_the_wheelhouse_without_dependencies_of_pqcompress() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    installs = [cmd for cmd in runs.split("&&") if "pip install" in cmd]
    assert installs and all("--no-index" in c and "--find-links /wheelhouse" in c for c in installs)
    own = [c for c in installs if re.search(r"\bpqcompress\s*$", c.strip())]
    assert own and "--no-deps" in own[0]
    assert "find_spec" in runs and "'torch'" in runs  # the build fails if torch got in


def test_requirements_are_the_serving_set_without_torch() -> None:
    pins = _pins()
    assert not EXCLUDED & set(pins)
    # pqcompress's core dependencies and its `serve` extra, from the installed metadata
    wanted = [Requirement(r) for r in metadata.requires("pqcompress") or []]
    names = {
        canonicalize_name(r.name)
        for r in wanted
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("serve", "zstd"))
    } - EXCLUDED
    assert {"fastapi", "uvicorn", "onnxruntime", "numpy"} <= names
    assert names <= set(pins), f"missing from requirements-serve.txt: {names - set(pins)}"
    # codec.portable re-attaches the weights to the embedded graph without the onnx package
    assert "onnx" not in pins


def test_requirements_lock_is_closed_under_dependencies() -> None:
    """Every dependency of a pinned package (as installed here) is pinned too, so
    ``pip install --no-index -r`` in the image installs exactly the listed set. (Versions are
    not compared with this environment's: the pins are what the image was measured with.)"""
    pins = _pins()
    missing = []
    checked = 0
    for name in pins:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)  # checked where installed; the others still are
            continue
        checked += 1
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            assert canonicalize_name(req.name) in pins, f"{name} needs {req.name}, not pinned"
    if not checked:
        pytest.skip(f"none of the pinned packages is installed here ({len(missing)} pinned)")


def test_dockerignore_keeps_the_context_to_wheels_and_models() -> None:
    lines = [
        ln.strip()
        for ln in (DOCKER / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    assert set(lines[1:]) == {"!Dockerfile", "!requirements-serve.txt", "!wheelhouse/", "!models/"}


@pytest.mark.parametrize("script", ["build.sh", "make_base.sh", "start_dockerd.sh", "measure.sh"])
def test_scripts_parse(script: str) -> None:
    path = DOCKER / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_build_script_refuses_unknown_arguments() -> None:
    out = subprocess.run(
        ["bash", str(DOCKER / "build.sh"), "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "unknown argument '--no-such-flag'" in out.stderr
