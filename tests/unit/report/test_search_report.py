"""The search study's report from a real (tiny) search store: tables, plots, CLI route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqcompress.cli.main import main
from pqcompress.report.errors import ReportError
from pqcompress.report.search import build_search_report, is_search_store
from pqcompress.testing.runs import tiny_search_spec, train_tiny_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pymoo")  # the search's hypervolumes
    from pqcompress.search import SearchSpec, run_search

    base = tmp_path_factory.mktemp("search-report")
    run = train_tiny_run(base / "run")
    spec = tiny_search_spec(
        run,
        budget=6,
        initial=4,
        repeats=2,
        algorithms=["random", {"algorithm": "ctaea", "pop_size": 3}],
    )
    run_search(SearchSpec.from_dict(spec), base / "r.db")
    return base / "r.db"


def test_tables_and_plots_of_every_algorithm(store: Path, tmp_path: Path) -> None:
    assert is_search_store(store)
    paths = build_search_report(store, tmp_path / "rep")
    text = paths[0].read_text()
    assert "| random | 2 |" in text and "| ctaea 3x2 | 2 |" in text
    records = json.loads((tmp_path / "rep" / "search_hypervolume.json").read_text())["records"]
    assert {r["algorithm"] for r in records} == {"random", "ctaea 3x2"}
    assert all(r["repeats"] == 2 and r["hypervolume_mean"] >= 0 for r in records)
    pytest.importorskip("matplotlib")  # the plots (the tables above need none)
    for name in ("search_hypervolume_curve", "search_hypervolume_box", "search_fronts"):
        assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 0, name


def test_cli_routes_a_search_store_and_names_a_missing_study(store: Path, tmp_path: Path, capsys):
    assert main(["report", str(store), "-o", str(tmp_path / "rep"), "--no-plots"]) == 0
    assert "search study's tables" in capsys.readouterr().out
    with pytest.raises(ReportError, match="no search study 'other'"):
        build_search_report(store, tmp_path / "x", study="other")


def test_the_feasible_evaluations_are_listed_smallest_first(store: Path, tmp_path: Path) -> None:
    """The settings a reader can take: every evaluation that met the constraints, by size."""
    from pqcompress.results.search import SearchStore

    build_search_report(store, tmp_path / "rep", plots=False)
    records = json.loads((tmp_path / "rep" / "search_feasible.json").read_text())["records"]
    with SearchStore(store, readonly=True) as db:
        evals = db.all_evaluations(db.studies()[0])
    feasible = [e for e in evals if e["feasible"]]
    assert len(records) == len(feasible) > 0
    smallest = [r["nonzero"] for r in records]  # this spec has no size objective
    assert smallest == sorted(smallest)
    assert all(any(k.startswith("var.") for k in r) for r in records)
    text = (tmp_path / "rep" / "search_report.md").read_text()
    assert f"Evaluations that met the constraints ({len(feasible)} of {len(evals)})" in text
