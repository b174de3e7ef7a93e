"""Nothing points up: the import graph of src/pqcompress, read statically (ast), obeys the floors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "pqcompress"


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every pqcompress module a file imports, at any depth (lazy imports inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("pqcompress")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("pqcompress"):
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}
    return out


MODULES = {_module(p): imports_of(p) for p in sorted(SRC.rglob("*.py"))}


def _importers_of(prefix: str, *, outside: str) -> list[str]:
    return sorted(
        f"{mod} -> {imp}"
        for mod, imps in MODULES.items()
        if not (mod == outside or mod.startswith(outside + "."))
        for imp in imps
        if imp == prefix or imp.startswith(prefix + ".")
    )


def test_only_the_cli_imports_the_cli():
    # ``python -m pqcompress`` is the command itself: its entry point is the one exception
    assert _importers_of("pqcompress.cli", outside="pqcompress.cli") == [
        "pqcompress.__main__ -> pqcompress.cli.main",
        "pqcompress.__main__ -> pqcompress.cli.main.main",
    ]


def test_the_floors_contract_is_kept_and_catches_an_upward_import(tmp_path):
    """DESIGN.md's floors are an import-linter contract (pyproject.toml, `lint-imports` in CI):
    it is kept, and a copy of the package with one import pointing up breaks it."""
    import shutil
    import subprocess

    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    root = SRC.parents[1]
    kept = subprocess.run([exe], cwd=root, capture_output=True, text=True, timeout=300)
    assert kept.returncode == 0, kept.stdout[-2000:]
    copy = tmp_path / "repo"
    shutil.copytree(
        SRC.parent, copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
    with (copy / "src" / "pqcompress" / "ops" / "pq.py").open("a") as fh:
        fh.write("\n\ndef _up():\n    from pqcompress.train import trainer  # noqa: F401\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(copy / "src")}
    broken = subprocess.run([exe], cwd=copy, capture_output=True, text=True, timeout=300, env=env)
    assert broken.returncode != 0 and "pqcompress.ops.pq -> pqcompress.train" in broken.stdout


def test_the_checker_sees_lazy_imports():
    # export_run imports its calibration data lazily, inside a function
    assert "pqcompress.data.batches" in MODULES["pqcompress.codec.run_export"]
    assert "pqcompress.aware.compressor" in MODULES["pqcompress.codec.run_export"]


def test_only_the_cli_imports_the_study_pipelines():
    importers = _importers_of("pqcompress.studies", outside="pqcompress.studies")
    assert importers and all(m.startswith("pqcompress.cli.") for m in importers)
