"""Tables from known stores: best-over-lr cells, the PE baseline, run list, Table I, errors."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from report_support import grid_rows, run_row, write_store

from pqcompress.cli.main import main
from pqcompress.metrics.efficiency import efficiency_score
from pqcompress.report import ReportError, ReportOptions, build_report
from pqcompress.report.store import read_sweep

NO_PLOTS = ReportOptions(plots=False)


def _records(out: Path, name: str) -> list[dict]:
    return json.loads((out / f"{name}.json").read_text())["records"]


def _cell(records: list[dict], alpha: float, bits: int) -> dict:
    return next(r for r in records if r["alpha"] == alpha and r["bits"] == bits)


def test_accuracy_table_is_best_over_learning_rate(grid_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    build_report(grid_store, out, NO_PLOTS)
    recs = _records(out, "accuracy_density")
    assert len(recs) == 9
    base = _cell(recs, 0.0, 32)
    assert (base["test_acc_pct"], base["lr"], base["runs"]) == (92.0, 0.05, 2)
    odd = _cell(recs, 0.5, 4)  # lr 0.01 wins here (0.70 vs 0.60)
    assert (odd["test_acc_pct"], odd["lr"], odd["density_pct"]) == (70.0, 0.01, 33.0)
    md = (out / "accuracy_density.md").read_text()
    assert "| 0.5 | 88.00 (30.00) | 87.00 (30.00) | 70.00 (33.00) |" in md
    assert "best over: train.lr" in md
    with (out / "accuracy_density.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["alpha"], r["bits"]) for r in rows} >= {("0.5", "4"), ("0.0", "32")}


def test_efficiency_scores_use_the_best_uncompressed_run_as_baseline(
    grid_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    build_report(grid_store, out, ReportOptions(plots=False, rhos=(1, 2)))
    recs = _records(out, "efficiency_score")
    assert {r["rho"] for r in recs} == {1.0, 2.0}
    assert all(r["baseline_acc_pct"] == 92.0 for r in recs)  # lr 0.05 baseline, not 0.90
    pe = next(r for r in recs if (r["rho"], r["alpha"], r["bits"]) == (2.0, 0.75, 4))
    assert pe["efficiency_score"] == pytest.approx((0.80 / 0.92) ** 2 / (0.10 * 4 / 32))
    md = (out / "efficiency_score.md").read_text()
    assert "acc_base = 92.00%" in md


def test_efficiency_score_reproduces_the_study_check(tmp_path: Path) -> None:
    """docs/method.md §2: alpha .625, 4 bits, 79.20% vs base 87.21%, density 6.925% -> 104.9."""
    store = write_store(
        tmp_path / "r.db",
        [
            run_row(0, alpha=0.0, bits=32, acc=0.8721, density=1.0),
            run_row(1, alpha=0.625, bits=4, acc=0.7920, density=0.06925),
        ],
    )
    build_report(store, tmp_path / "rep", NO_PLOTS)
    recs = _records(tmp_path / "rep", "efficiency_score")
    got = {r["rho"]: round(r["efficiency_score"], 1) for r in recs if r["bits"] == 4}
    assert got == {1.0: 104.9, 2.0: 95.3, 3.0: 86.5}
    table_i = _records(tmp_path / "rep", "table_i_comparison")
    row = _cell(table_i, 0.625, 4)
    assert (row["acc_pct_theirs"], row["pe_rho1_theirs"]) == (79.2, 104.9)
    assert row["pe_rho1_ours"] == pytest.approx(efficiency_score(0.792, 0.8721, 0.06925, 4))


def test_no_baseline_means_no_scores_and_a_note(tmp_path: Path) -> None:
    rows = [r for r in grid_rows() if '"alpha": 0.0' not in r["params"]]
    store = write_store(tmp_path / "r.db", rows)
    build_report(store, tmp_path / "rep", NO_PLOTS)
    data = json.loads((tmp_path / "rep" / "efficiency_score.json").read_text())
    assert data["records"] == []
    assert "alpha 0, 32 bits" in data["notes"][0]


def test_run_list_has_every_point_status_error_and_ratio(tmp_path: Path) -> None:
    rows = grid_rows()
    rows.append(
        run_row(
            len(rows), alpha=0.25, bits=8, status="failed", acc=None, error="Boom: nan\nTrace | x"
        )
    )
    store = write_store(tmp_path / "r.db", rows)
    build_report(store, tmp_path / "rep", NO_PLOTS)
    recs = _records(tmp_path / "rep", "runs")
    assert len(recs) == len(rows)
    failed = recs[-1]
    assert (failed["status"], failed["error"]) == ("failed", "Boom: nan\nTrace | x")
    first = recs[0]
    assert first["ratio_to_float32"] == pytest.approx(400_000 / first["pqz_bytes"])
    md = (tmp_path / "rep" / "runs.md").read_text()
    assert "| failed |" in md and "Boom: nan |" in md and "Trace" not in md


def test_partial_store_shows_unfinished_cells_by_status(tmp_path: Path) -> None:
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.9),
        run_row(1, alpha=0.0, bits=32, lr=0.01, status="running", acc=None),
        run_row(2, alpha=0.5, bits=8, status="failed", acc=None, error="x"),
        run_row(3, alpha=0.5, bits=4, status="pending", acc=None),
        run_row(4, alpha=0.5, bits=32, status="interrupted", acc=None),
    ]
    store = write_store(tmp_path / "r.db", rows)
    res = build_report(store, tmp_path / "rep", NO_PLOTS)
    md = (tmp_path / "rep" / "accuracy_density.md").read_text()
    assert "| 0 | 90.00 (100.00) (+1 unfinished) |" in md
    assert "| 0.5 | interrupted | failed | pending |" in md
    assert res.index_html.is_file()
    assert "failed" in res.index_html.read_text()


def test_report_leaves_the_store_untouched(grid_store: Path, tmp_path: Path) -> None:
    before = grid_store.read_bytes()
    build_report(grid_store, tmp_path / "rep", NO_PLOTS)
    assert grid_store.read_bytes() == before


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path / "nope.db", tmp_path / "rep", NO_PLOTS)


def test_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    store = write_store(tmp_path / "r.db", [])
    with pytest.raises(ReportError, match="holds no sweep; nothing to report"):
        build_report(store, tmp_path / "rep", NO_PLOTS)
    assert not (tmp_path / "rep").exists()


def test_unknown_or_ambiguous_sweep_names_the_sweeps(tmp_path: Path) -> None:
    rows = [run_row(0, alpha=0, bits=32), run_row(1, alpha=0, bits=32, sweep="other")]
    rows[1]["run_id"] = "x" * 64
    store = write_store(tmp_path / "r.db", rows)
    with pytest.raises(ReportError, match=r"no sweep 'nope' in .*it holds: grid, other"):
        build_report(store, tmp_path / "rep", ReportOptions(sweep="nope", plots=False))
    with pytest.raises(ReportError, match=r"2 sweeps .*--sweep"):
        build_report(store, tmp_path / "rep", NO_PLOTS)
    res = build_report(store, tmp_path / "rep", ReportOptions(sweep="other", plots=False))
    assert (res.sweep, res.runs) == ("other", 1)


def test_a_run_whose_stored_json_is_broken_is_one_report_error(tmp_path: Path) -> None:
    store = write_store(tmp_path / "r.db", [run_row(0, alpha=0, bits=32)])
    with sqlite3.connect(store) as con:
        con.execute("UPDATE runs SET config = '{not json'")
    with pytest.raises(ReportError, match="cannot read results store"):
        read_sweep(store)


def test_not_a_store_and_newer_schema_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    with pytest.raises(ReportError, match="not a pqcompress results store"):
        build_report(junk, tmp_path / "rep", NO_PLOTS)
    store = write_store(tmp_path / "r.db", [run_row(0, alpha=0, bits=32)])
    with sqlite3.connect(store) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ReportError, match="schema version 99"):
        build_report(store, tmp_path / "rep", NO_PLOTS)


@pytest.mark.parametrize("rhos", [(), (0,), (-1.0,), ("2",)])
def test_bad_rho_is_refused(rhos: tuple) -> None:
    with pytest.raises(ReportError, match="rho"):
        ReportOptions(rhos=rhos)


def test_cli_report_writes_the_tables_and_exits_0(
    grid_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rep"
    assert main(["report", str(grid_store), "-o", str(out), "--no-plots", "--rho", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    recs = _records(out, "efficiency_score")
    assert {r["rho"] for r in recs} == {1.0}


def test_cli_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "none.db"), "-o", str(tmp_path / "o"), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pqcompress: error: results store") and "\n" not in err


def test_points_table_averages_seeds_and_keeps_density_runs_out_of_the_grid(
    tmp_path: Path,
) -> None:
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.85, float32_bytes=400_000),
        run_row(1, alpha=0.0, bits=32, acc=0.87, extra_params={"seed": 1}),
        run_row(2, alpha=1.25, bits=4, acc=0.80, density=0.10, pqz_bytes=8_000),
        run_row(3, alpha=0.5, bits=4, acc=0.84, density=0.05, pqz_bytes=4_000),
        run_row(4, alpha=0.5, bits=4, acc=0.82, density=0.05, pqz_bytes=6_000),
    ]
    rows[1]["params"] = json.dumps({"alpha": 0.0, "bits": 32, "train.lr": 0.05, "seed": 1})
    for row, seed in ((rows[3], 0), (rows[4], 1)):  # one density setting, two seeds
        cfg = json.loads(row["config"])
        cfg["compression"]["target_density"] = 0.05
        cfg["train"]["seed"] = seed
        row["config"] = json.dumps(cfg)
        params = {"bits": 4, "target_density": 0.05, "train.lr": 0.05}
        row["params"] = json.dumps({**params, **({"seed": seed} if seed else {})})
    store = write_store(tmp_path / "s.db", rows)
    out = tmp_path / "rep"
    build_report(store, out, NO_PLOTS)
    grid = _records(out, "accuracy_density")
    assert {(r["alpha"], r["bits"]) for r in grid} == {(0.0, 32), (1.25, 4)}
    points = _records(out, "points")
    assert len(points) == 3
    base, fixed, density = points
    assert base["seeds"] == [0, 1] or len(base["run_ids"]) == 2
    assert base["test_acc_pct_mean"] == pytest.approx(86.0)
    assert base["test_acc_pct_sd"] == pytest.approx(1.4142, abs=1e-3)
    assert base["delta_vs_float32_points"] == pytest.approx(0.0)
    assert fixed["test_acc_pct_sd"] is None and fixed["ratio_to_float32_mean"] == 50.0
    assert fixed["delta_vs_float32_points"] == pytest.approx(-6.0)
    assert density["test_acc_pct_mean"] == pytest.approx(83.0)
    assert density["pqz_bytes_mean"] == 5_000 and density["ratio_to_float32_mean"] > 50
    # 5,000 bytes at 83% beats 8,000 bytes at 80%: only base and density are on the frontier
    assert [p["frontier"] for p in points] == [True, False, True]
    md = (out / "points.md").read_text()
    assert "86.00 ± 1.41" in md


def test_amc1d_sweeps_get_the_modulation_studys_table_beside_ours(tmp_path: Path) -> None:
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.90, model="amc1d", dataset="modulation",
                pqz_bytes=400_000),
        run_row(1, alpha=0.75, bits=3, acc=0.80, density=0.3, model="amc1d",
                dataset="modulation", pqz_bytes=20_000),
    ]  # fmt: skip
    out = tmp_path / "rep"
    res = build_report(write_store(tmp_path / "m.db", rows), out, NO_PLOTS)
    assert "modulation_comparison" in res.tables
    recs = {(r["alpha"], r["bits"]): r for r in _records(out, "modulation_comparison")}
    base, small = recs[(0.0, 32)], recs[(0.75, 3)]
    assert base["acc_pct_theirs"] == 97.06 and base["sparsity_pct_theirs"] is None
    assert small["acc_pct_theirs"] == 83.36 and small["file_mb_theirs_as_printed"] == 0.11
    assert small["acc_pct_ours"] == pytest.approx(80.0)
    assert small["delta_acc_pp"] == pytest.approx(80.0 - 83.36)
    assert small["sparsity_pct_ours"] == pytest.approx(70.0)
    assert small["x_smaller_than_float32_pqz_ours"] == pytest.approx(20.0)
    cnn = build_report(write_store(tmp_path / "c.db", [run_row(0, alpha=0.0, bits=32)]),
                       tmp_path / "rep2", NO_PLOTS)  # fmt: skip
    assert "modulation_comparison" not in cnn.tables


def test_grid_cells_average_seeds_and_never_pick_the_best_seed(tmp_path: Path) -> None:
    """Two seeds of one setting are one cell (mean ± sd) in the grid, Table I and PE; a cell
    whose runs differ by another axis takes the setting with the best mean."""
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.82),
        run_row(1, alpha=0.0, bits=32, acc=0.84, extra_params={"seed": 1}),
        run_row(2, alpha=0.625, bits=4, acc=0.80, density=0.10),
        run_row(3, alpha=0.625, bits=4, acc=0.70, density=0.10, extra_params={"seed": 1}),
        run_row(4, alpha=0.625, bits=4, acc=0.78, density=0.07, extra_params={"update": "x"}),
    ]
    store = write_store(tmp_path / "s.db", rows)
    out = tmp_path / "rep"
    build_report(store, out, ReportOptions(plots=False, rhos=(1,)))
    grid = _records(out, "accuracy_density")
    base, cell = _cell(grid, 0.0, 32), _cell(grid, 0.625, 4)
    assert base["test_acc_pct"] == pytest.approx(83.0) and base["seeds"] == 2
    assert base["test_acc_sd_pct"] == pytest.approx(1.4142, abs=1e-3)
    # seeds 0 and 1 average 75% < 78% of the other setting: that one is the cell, alone
    assert cell["test_acc_pct"] == pytest.approx(78.0) and cell["seeds"] == 1
    assert cell["test_acc_sd_pct"] is None and cell["density_pct"] == pytest.approx(7.0)
    md = (out / "accuracy_density.md").read_text()
    assert "| 0 | 83.00 ± 1.41 (100.00) |" in md and "averaged (mean ± sample sd)" in md
    assert "best over: update" in md and "seed" not in md.split("best over:")[1].split(";")[0]
    table_i = _cell(_records(out, "table_i_comparison"), 0.0, 32)
    assert table_i["acc_pct_ours"] == pytest.approx(83.0) and table_i["seeds_ours"] == 2
    assert "83.00 ± 1.41" in (out / "table_i_comparison.md").read_text()
    pe = _cell(_records(out, "efficiency_score"), 0.625, 4)
    assert pe["baseline_acc_pct"] == pytest.approx(83.0)
    assert pe["efficiency_score"] == pytest.approx((0.78 / 0.83) / (0.07 * 4 / 32))


def test_a_resnet20_sweep_is_set_beside_the_literature(tmp_path):
    """Settings that quantize whole tensors alike, matched by bit width with the published rows
    (of several at one width, the one of the highest validation accuracy: the ternary code at
    2 bits, not the collapsed alpha 0); settings with a density target are left out of that
    table; each side's delta against its own float."""
    from pqcompress.report.reference import literature
    from pqcompress.report.tables import literature_table

    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.92, model="resnet20", dataset="cifar10",
                pqz_bytes=1_100_000, float32_bytes=1_080_000),
        run_row(1, alpha=0.0, bits=4, acc=0.915, model="resnet20", dataset="cifar10",
                pqz_bytes=140_000, float32_bytes=1_080_000),
        run_row(2, alpha=0.0, bits=2, acc=0.18, model="resnet20", dataset="cifar10",
                pqz_bytes=19_000, float32_bytes=1_080_000),
        run_row(3, alpha=0.8, bits=2, acc=0.90, model="resnet20", dataset="cifar10",
                pqz_bytes=50_000, float32_bytes=1_080_000),
        run_row(4, alpha=0.0, bits=4, acc=0.95, model="resnet20", dataset="cifar10",
                pqz_bytes=40_000, float32_bytes=1_080_000,
                compression={"target_density": 0.2},
                extra_params={"target_density": 0.2}),  # a density target: not a literature row
        run_row(5, alpha=1.0, bits=32, acc=0.96, model="resnet20", dataset="cifar10",
                pqz_bytes=300_000, float32_bytes=1_080_000),  # pruning alone: not float32
    ]  # fmt: skip
    sweep = read_sweep(write_store(tmp_path / "r.db", rows))
    published = literature("resnet20", "cifar10")
    assert published is not None and literature("cnn5", "cifar10") is None
    assert literature("../x", "y") is None
    table = literature_table(sweep, published)
    by_bits = {(r["method"], r["bits"]): r for r in table.records}
    assert by_bits["APoT", 32]["our_acc_pct"] == pytest.approx(92.0)
    assert by_bits["APoT", 4]["our_delta_points"] == pytest.approx(-0.5)
    assert by_bits["APoT", 4]["their_delta_points"] == pytest.approx(92.45 - 92.96)
    assert by_bits["APoT", 4]["our_ratio"] == pytest.approx(1_080_000 / 140_000)
    for method in ("APoT", "TTQ"):  # the ternary code, chosen on validation
        assert by_bits[method, 2]["our_acc_pct"] == pytest.approx(90.0)
    assert by_bits["TTQ", 2]["their_delta_points"] == pytest.approx(91.13 - 91.77)
    assert "APoT" in table.notes[-1] and "TTQ" in table.notes[-1]
    # the report sets ResNet-20 beside its own literature, not beside CNN5's Table I
    from pqcompress.report import ReportOptions, build_report

    res = build_report(sweep.store, tmp_path / "rep", ReportOptions(plots=False))
    assert "literature" in res.tables and "table_i_comparison" not in res.tables
