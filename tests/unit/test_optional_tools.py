"""Without the optional tools (every extra of pyproject.toml), the core still imports, the CLI
still parses, and every test module still collects: a test that needs a missing tool is
skipped on its own (``@pytest.mark.requires``), never its whole module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# import names of the extras' distributions where they differ from the distribution name
IMPORT_NAMES = {
    "prometheus-client": "prometheus_client",
    "python-multipart": "multipart",
    "kubernetes-validate": "kubernetes_validate",
}
# the test runner, its plugins (schemathesis is one: pytest loads it at start) and the linters
# are not optional for the tests themselves
TEST_TOOLS = {"pytest", "hypothesis", "ruff", "pytest-timeout", "mypy", "types-PyYAML",
              "schemathesis"}  # fmt: skip


def _optional_modules() -> list[str]:
    """The import names of every distribution an extra of pyproject.toml requires (read from
    the file, not the installed metadata, which an editable install leaves stale)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def dist(req: str) -> str:
        return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0]

    core = {dist(req) for req in project["dependencies"]}  # an extra may repeat a core one
    names: set[str] = set()
    for requirements in project["optional-dependencies"].values():
        for name in map(dist, requirements):
            if name not in TEST_TOOLS and name not in core:
                names.add(IMPORT_NAMES.get(name, name.replace("-", "_")))
    return sorted(names)


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment where importing any optional tool raises ModuleNotFoundError."""
    root = tmp_path_factory.mktemp("blocked")
    for name in _optional_modules():
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is blocked by this test', name='{name}')\n"
        )
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_the_optional_list_names_the_serving_and_search_tools() -> None:
    names = _optional_modules()
    assert {"fastapi", "onnxruntime", "httpx", "pymoo", "ray", "matplotlib"} <= set(names)
    assert "pytest" not in names and "torch" not in names
    assert "zstandard" not in names  # a core dependency (also listed by the zstd extra)


def test_core_and_cli_parser_import_without_optional_tools(blocked_env: dict[str, str]) -> None:
    code = (
        "import pqcompress, pqcompress.aware, pqcompress.codec, pqcompress.train\n"
        "from pqcompress.cli.main import build_parser\n"
        "build_parser().parse_args(['train', '--help'])\n"  # prints the help, exits 0
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=blocked_env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--preset" in run.stdout
    blocked = subprocess.run(
        [sys.executable, "-c", "import fastapi"], env=blocked_env, capture_output=True, text=True
    )
    assert "blocked by this test" in blocked.stderr


def test_every_test_module_collects_without_optional_tools(blocked_env: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         str(ROOT / "tests")],
        env=blocked_env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # a module-level importorskip shows up as a skipped module at collection
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert not skipped, "\n".join(skipped)
    assert " error" not in run.stdout.splitlines()[-1], run.stdout[-3000:]
