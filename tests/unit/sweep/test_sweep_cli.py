"""`pqcompress sweep` without training: dry run, bad stores and specs, progress lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_support import MINIMAL_YAML

from pqcompress.cli.main import main
from pqcompress.sweep import ResultsStore, SweepSpec
from pqcompress.sweep.progress import SweepProgress


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(MINIMAL_YAML, encoding="utf-8")
    return path


def test_dry_run_lists_points_and_writes_nothing(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path)
    db = tmp_path / "r.db"
    assert main(["sweep", str(spec), "--store", str(db), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sweep mini: 4 point(s)" in out and "alpha=0.5 bits=4" in out and "new" in out
    assert not db.exists() and not (tmp_path / "r_runs").exists()
    points = SweepSpec.from_yaml(spec).points()
    with ResultsStore(db) as store:
        store.add_points("mini", [{"run_id": points[0].run_id, "point_index": 0,
                                   "params": points[0].params, "config": {}}])  # fmt: skip
        store.mark([points[0].run_id], "failed", error="x")
    assert main(["sweep", str(spec), "--store", str(db), "--dry-run", "--no-retry-failed"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "skip-failed" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "{tmp}/notes.txt"], "is not a SQLite database; refusing to overwrite"),
        (["--store", "{tmp}/r.db", "--executor", "slurm"], "unknown executor 'slurm'"),
        (["--store", "{tmp}/r.db", "--ray-address", "auto"], "--ray-address applies to"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    (tmp_path / "notes.txt").write_text("keep me\n", encoding="utf-8")
    argv = ["sweep", str(_spec(tmp_path)), *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pqcompress: error: ") and message in err and "\n" not in err
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me\n"


def test_bad_spec_is_reported_before_anything_runs(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("model: cnn5\ngrid: {alpha: [0.5, -1]}\n", encoding="utf-8")
    assert main(["sweep", str(spec), "--store", str(tmp_path / "r.db")]) == 2
    assert "grid axis 'alpha' value -1" in capsys.readouterr().err
    assert not (tmp_path / "r_runs").exists()


def test_progress_lines_count_points(capsys) -> None:
    with SweepProgress(True, 3, done=1, name="g") as bar:
        bar.started("alpha=0.5")
        bar.finished("alpha=0.5", "completed", "test 90.00%")
        bar.started("alpha=1")
        bar.finished("alpha=1", "failed", "Boom")
    err = capsys.readouterr().err
    assert "3 point(s), 1 already finished" in err
    assert "[2/3] completed     alpha=0.5  test 90.00% (ok 2 | running 0 | failed 0 | ETA" in err
    assert "[3/3] failed" in err and "failed 1" in err
    with SweepProgress(False, 3) as quiet:
        quiet.started("x")
        quiet.finished("x", "completed")
    assert capsys.readouterr().err == ""
