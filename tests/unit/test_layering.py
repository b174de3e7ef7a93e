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


@pytest.mark.parametrize("upper", ["pqcompress.train", "pqcompress.sweep", "pqcompress.serve"])
def test_codec_and_ops_import_no_higher_floor(upper):
    bad = [
        f"{mod} -> {imp}"
        for mod, imps in MODULES.items()
        if mod.startswith(("pqcompress.codec", "pqcompress.ops"))
        for imp in imps
        if imp == upper or imp.startswith(upper + ".")
    ]
    assert bad == []


def test_ground_floor_imports_nothing_above_it():
    ground = (
        "pqcompress.errors",
        "pqcompress.config",
        "pqcompress.atomic",
        "pqcompress.checkpoint",
        "pqcompress.yamlio",
        "pqcompress.cpus",
        "pqcompress.storedb",
        "pqcompress.proctree",
        "pqcompress.progressbar",
    )
    allowed = (*ground, "pqcompress.lazy")
    bad = [
        f"{mod} -> {imp}" for mod in ground for imp in MODULES[mod] if not imp.startswith(allowed)
    ]
    assert bad == []


def test_the_checker_sees_lazy_imports():
    # export_run imports its calibration data lazily, inside a function
    assert "pqcompress.data.batches" in MODULES["pqcompress.codec.run_export"]
    assert "pqcompress.aware.compressor" in MODULES["pqcompress.codec.run_export"]


@pytest.mark.parametrize(
    "upper",
    ["pqcompress.train", "pqcompress.codec", "pqcompress.studies", "pqcompress.sweep"],
)
def test_distill_stays_on_its_floor(upper):
    # the loss, the ensembles and the cache work in any loop: they need no trainer or codec
    bad = [
        f"{mod} -> {imp}"
        for mod, imps in MODULES.items()
        if mod.startswith("pqcompress.distill")
        for imp in imps
        if imp == upper or imp.startswith(upper + ".")
    ]
    assert bad == []


def test_only_the_cli_imports_the_study_pipelines():
    importers = _importers_of("pqcompress.studies", outside="pqcompress.studies")
    assert importers and all(m.startswith("pqcompress.cli.") for m in importers)
