"""report.settings: runs that differ only by seed are one setting, and the frontier over
settings (the points table and the size/accuracy plot share it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_support import run_row, write_store

from pqcompress.report.settings import baseline, group_settings, pareto_front, settings_front
from pqcompress.report.store import read_sweep


def _with_seed(row: dict, seed: int) -> dict:
    cfg = json.loads(row["config"])
    cfg["train"]["seed"] = seed
    row["config"] = json.dumps(cfg)
    row["params"] = json.dumps({**json.loads(row["params"]), "seed": seed})
    return row


def _sweep(tmp_path: Path, rows: list[dict]):
    return read_sweep(write_store(tmp_path / "s.db", rows))


def test_seeds_are_one_setting_with_mean_and_sd(tmp_path: Path) -> None:
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.84, pqz_bytes=300_000),
        run_row(1, alpha=1.25, bits=4, acc=0.80, density=0.1, pqz_bytes=9_000),
        _with_seed(run_row(2, alpha=1.25, bits=4, acc=0.78, density=0.2, pqz_bytes=11_000), 1),
        _with_seed(run_row(3, alpha=0.0, bits=32, acc=0.86, pqz_bytes=300_000), 1),
        run_row(4, alpha=0.5, bits=8, status="running"),  # unfinished: in no setting
    ]
    settings = group_settings(_sweep(tmp_path, rows))
    assert [s.seeds for s in settings] == [2, 2]  # ordered by each setting's first point
    base, small = settings
    assert baseline(settings) is base and base.is_baseline and not small.is_baseline
    assert base.acc == pytest.approx(0.85) and base.acc_sd == pytest.approx(0.01414, abs=1e-4)
    assert small.pqz_bytes == pytest.approx(10_000) and small.density == pytest.approx(0.15)
    assert [r.point_index for r in small.runs] == [1, 2]


def test_the_front_is_over_setting_means_not_lucky_seeds(tmp_path: Path) -> None:
    """A setting whose best seed would beat another setting, but whose mean does not, is off
    the frontier."""
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.85, pqz_bytes=300_000),
        run_row(1, alpha=0.5, bits=4, acc=0.83, pqz_bytes=20_000),  # seed 0: lucky
        _with_seed(run_row(2, alpha=0.5, bits=4, acc=0.77, pqz_bytes=20_000), 1),
        run_row(3, alpha=1.25, bits=4, acc=0.81, pqz_bytes=15_000),
        run_row(4, alpha=1.25, bits=8, acc=0.79, pqz_bytes=None),  # no file: never on it
    ]
    rows[4]["pqz_bytes"] = None
    settings = group_settings(_sweep(tmp_path, rows))
    labels = [(s.first.alpha, s.first.bits) for s in settings]
    front = [labels[i] for i in settings_front(settings)]
    assert front == [(1.25, 4), (0.0, 32)]  # (0.5, 4): mean 80% at 20 kB is beaten


def test_pareto_front_orders_by_size_and_keeps_the_first_of_equal_points() -> None:
    pts = [(10.0, 0.5), (5.0, 0.6), (5.0, 0.6), (30.0, 0.6), (15.0, 0.9)]
    assert pareto_front(pts) == [1, 4]


def test_labels_show_what_differs_from_the_defaults_and_parameters_the_config_lacks(
    tmp_path: Path,
) -> None:
    rows = [
        run_row(0, alpha=0.625, bits=4, acc=0.1),
        run_row(1, alpha=0.5, bits=3, acc=0.8),
        run_row(2, alpha=0.5, bits=4, acc=0.8),
    ]
    cfg = json.loads(rows[0]["config"])
    cfg["compression"].update(update="inplace", rounding="floor")
    rows[0]["config"] = json.dumps(cfg)
    for row, extra in ((rows[1], {"solve_min_share": 0.05}), (rows[2], {"mask": "sticky"})):
        cfg = json.loads(row["config"])
        cfg["compression"].update(target_density=0.075, **extra)
        row["config"] = json.dumps(cfg)
    params = json.loads(rows[2]["params"])
    rows[2]["params"] = json.dumps({**params, "mask": "sticky", "solver": "old sampler"})
    runs = _sweep(tmp_path, rows).runs
    assert [r.short_label() for r in runs] == [
        "α=0.625, 4b in place floor",
        "7.5% dens., 3b +fixed α",
        "7.5% dens., 4b sticky (old sampler)",
    ]
    assert runs[2].notes == {"solver": "old sampler"}  # mask is in the config: not a note
    assert runs[0].notes == {}
