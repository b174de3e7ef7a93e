"""run_sweep with the local executor: results in the store, resume rules, failure isolation."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path

import pytest
from sweep_support import tiny_spec

import pqcompress
import pqcompress.codec
from pqcompress.execute.local import LocalExecutor
from pqcompress.sweep import ResultsStore, SweepSpec, plan_sweep, run_sweep
from pqcompress.sweep.runner import POINT_JOB
from pqcompress.sweep.worker import execute_point

pytestmark = pytest.mark.slow


def test_sweep_records_results_isolates_failures_and_resumes(tmp_path: Path) -> None:
    spec = SweepSpec.from_dict(
        tiny_spec(
            grid={"alpha": [0.0], "bits": [32]},
            include=[
                {"alpha": 0.5, "bits": 4},
                {"alpha": 0.5, "bits": 4, "model_args.bogus": 1},  # fails in build_model
            ],
        )
    )
    db = tmp_path / "r.db"
    summary = run_sweep(spec, db, progress=False)
    assert (summary.ran, summary.skipped) == (3, 0)
    assert [r["point_index"] for r in summary.failed] == [2]
    assert "ConfigError" in summary.failed[0]["error"] and "bogus" in summary.failed[0]["error"]
    with ResultsStore(db) as store:
        rows = store.runs(sweep="tiny")
        assert [r["status"] for r in rows] == ["completed"] * 2 + ["failed"]
        for r in rows[:2]:
            assert r["pqz_bytes"] == Path(r["pqz_path"]).stat().st_size
            state = pqcompress.load(r["pqz_path"]).state_dict()
            dense = sum(
                t.numel() * (4 if t.is_floating_point() else t.element_size())
                for t in state.values()
            )
            assert r["float32_bytes"] == dense  # every stored tensor, as dense float32
            assert Path(r["pqz_path"]).is_file() and r["attempts"] == 1
            assert r["run_dir"] == str(tmp_path / "r_runs" / "tiny" / r["run_id"])
            assert r["executor"] == "local" and r["best_epoch"] in (1, 2)
            assert [e["epoch"] for e in store.epochs(r["run_id"])] == [1, 2]
        assert rows[1]["pqz_bytes"] < rows[0]["pqz_bytes"]  # 4-bit pruned vs float32
        assert "bogus" in store.meta()["sweep.tiny.spec"]
    finished = {
        r["run_id"]: Path(r["run_dir"], "metrics.jsonl").stat().st_mtime_ns for r in rows[:2]
    }

    # rerun without retrying failures: nothing runs
    again = run_sweep(spec, db, progress=False, retry_failed=False)
    assert (again.ran, again.skipped) == (0, 3) and len(again.failed) == 1

    # the DB says running but the run directory holds the finished result: ingest, no training
    with ResultsStore(db) as store:
        store.mark_running(rows[1]["run_id"], run_dir=rows[1]["run_dir"], executor="local")
        store.record_run(rows[1]["run_id"], {"pqz_bytes": None, "result": None}, [])
    plans = {
        p.point.run_id: p.action for p in plan_sweep(spec, ResultsStore(db), tmp_path / "r_runs")
    }
    assert plans[rows[1]["run_id"]] == "resume" and plans[rows[0]["run_id"]] == "skip"
    third = run_sweep(spec, db, progress=False)  # retries the failed point (fails again)
    assert third.ran == 2 and len(third.failed) == 1
    with ResultsStore(db) as store:
        after = store.runs(sweep="tiny")
        assert [r["status"] for r in after] == ["completed"] * 2 + ["failed"]
        assert [r["attempts"] for r in after] == [1, 3, 2]
        assert (
            after[1]["pqz_bytes"] == rows[1]["pqz_bytes"]
            and len(store.epochs(after[1]["run_id"])) == 2
        )
    for rid, mtime in finished.items():
        assert (
            Path(tmp_path / "r_runs" / "tiny" / rid / "metrics.jsonl").stat().st_mtime_ns == mtime
        )


def test_diverged_point_is_a_failed_outcome(tmp_path: Path) -> None:
    spec = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.5]}, train={"epochs": 1, "lr": 1e9}))
    point = spec.points()[0]
    out = execute_point(
        {"run_id": point.run_id, "config": point.config.to_dict(), "run_dir": str(tmp_path / "p")}
    )
    assert (out["ok"], out["status"]) == (False, "failed")
    assert out["error"].startswith("DivergedError: ")
    assert "DivergedError" in (tmp_path / "p" / "sweep.log").read_text(encoding="utf-8")


def test_a_dying_worker_fails_its_point_and_is_replaced(tmp_path: Path) -> None:
    long = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.0]}, train={"epochs": 1000}))
    short = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.5]}, train={"epochs": 1}))
    points = long.points() + short.points()  # the first is still training when killed
    tasks = [
        {"run_id": p.run_id, "config": p.config.to_dict(), "run_dir": str(tmp_path / p.run_id)}
        for p in points
    ]
    outcomes = []

    def kill_once_training(metrics: Path) -> None:  # not a timer: a loaded machine starts late
        while not metrics.exists():
            time.sleep(0.05)
        for child in mp.active_children():
            child.kill()

    def kill_first_worker(_i, task):
        if task["run_id"] == points[0].run_id:
            metrics = Path(task["run_dir"]) / "metrics.jsonl"
            threading.Thread(target=kill_once_training, args=(metrics,), daemon=True).start()

    with LocalExecutor(POINT_JOB, 1, threads=1) as executor:
        executor.run(tasks, kill_first_worker, lambda _i, outcome: outcomes.append(outcome))
    by_id = {o["run_id"]: o for o in outcomes}
    assert by_id[points[0].run_id]["status"] == "failed"
    assert "worker process died (signal 9)" in by_id[points[0].run_id]["error"]
    assert by_id[points[1].run_id]["ok"] and by_id[points[1].run_id]["status"] == "completed"
    assert mp.active_children() == []


def test_unknown_executor_and_missing_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pqcompress.errors import RegistryError
    from pqcompress.execute import ExecutorError

    spec = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.5]}))
    with pytest.raises(RegistryError, match="unknown executor 'slurm'"):
        run_sweep(spec, tmp_path / "r.db", executor="slurm", progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ExecutorError, match=r"pip install 'pqcompress\[ray\]'"):
        run_sweep(spec, tmp_path / "r.db", executor="ray", progress=False)
    with ResultsStore(tmp_path / "r.db") as store:
        assert store.runs() == []  # nothing recorded before the executor exists


def test_ray_executor_runs_points_into_the_same_store(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.0, 0.5]}, train={"epochs": 1}))
    summary = run_sweep(spec, tmp_path / "r.db", executor="ray", workers=1, progress=False)
    assert summary.ok and summary.ran == 2 and summary.startup_s is not None
    with ResultsStore(tmp_path / "r.db") as store:
        rows = store.runs()
        assert [r["status"] for r in rows] == ["completed", "completed"]
        assert all(r["executor"] == "ray" and r["pqz_bytes"] > 0 for r in rows)
        assert len(store.epochs(rows[0]["run_id"])) == 1


def test_inline_executor_runs_in_process_and_isolates_failures(tmp_path: Path) -> None:
    import torch

    spec = SweepSpec.from_dict(
        tiny_spec(
            grid={"alpha": [0.5]},
            train={"epochs": 1, "batch_size": 32, "lr": 0.05, "max_steps_per_epoch": 2},
            include=[{"alpha": 0.5, "model_args.bogus": 1}],  # fails in build_model
        )
    )
    threads = torch.get_num_threads()
    summary = run_sweep(spec, tmp_path / "r.db", executor="inline", progress=False)
    assert (summary.ran, len(summary.failed)) == (2, 1) and mp.active_children() == []
    assert "bogus" in summary.failed[0]["error"] and torch.get_num_threads() == threads
    with ResultsStore(tmp_path / "r.db") as store:
        rows = store.runs()
        assert [r["status"] for r in rows] == ["completed", "failed"]
        assert all(r["executor"] == "inline" for r in rows) and rows[0]["pqz_bytes"] > 0
    again = run_sweep(spec, tmp_path / "r.db", executor="inline", progress=False)
    assert (again.ran, again.skipped) == (1, 1)  # only the failed point is retried
    from pqcompress.execute import ExecutorError

    with pytest.raises(ExecutorError, match="one item at a time"):
        run_sweep(spec, tmp_path / "r.db", executor="inline", workers=2, progress=False)


def test_post_training_points_are_exported_and_stored_with_their_compressed_accuracy(
    tmp_path: Path,
) -> None:
    spec = SweepSpec.from_dict(
        tiny_spec(grid={"alpha": [0.8], "bits": [4], "schedule": ["step", "post"]})
    )
    db = tmp_path / "r.db"
    summary = run_sweep(spec, db, progress=False, executor="inline")
    assert summary.failed == []
    with ResultsStore(db) as store:
        step, post = store.runs(sweep="tiny")
    assert step["status"] == post["status"] == "completed"
    result = json.loads(post["result"]) if isinstance(post["result"], str) else post["result"]
    assert post["best_test_acc"] == result["post"]["test_acc"]
    assert post["density_at_best"] == result["post"]["density"] < 0.8
    assert post["best_epoch"] == post["epochs_run"] == 2
    manifest, _ = pqcompress.codec.read(post["pqz_path"])
    assert manifest["metadata"]["source"].endswith("post.pt")


def test_points_dropped_from_the_sweep_file_before_they_started_leave_the_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.db"
    first = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.0, 0.5], "bits": [32]}))
    plan_sweep(first, ResultsStore(db), tmp_path / "runs")  # plans only: rows stay pending
    with ResultsStore(db) as store:
        store.add_points(
            "tiny",
            [
                {"run_id": p.run_id, "point_index": p.index, "params": p.params,
                 "config": p.config.to_dict()}
                for p in first.points()
            ],
        )  # fmt: skip
        assert len(store.runs(sweep="tiny")) == 2
        kept = first.points()[0].run_id
        assert store.drop_unstarted("tiny", [kept]) == 1
        assert [r["run_id"] for r in store.runs(sweep="tiny")] == [kept]


def test_a_point_whose_row_another_process_dropped_is_recorded_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second sweep process on the store with an edited copy of the file (the same sweep
    name, fewer points) drops this process's unstarted rows; this process puts each back when
    it starts the point, so the result is recorded (it used to fail on the epochs' foreign
    key, with a traceback, after training)."""
    from pqcompress.sweep import runner

    spec = SweepSpec.from_dict(
        tiny_spec(
            grid={"alpha": [0.0, 0.5], "bits": [32]},
            train={"epochs": 1, "batch_size": 32, "lr": 0.05, "max_steps_per_epoch": 2},
        )
    )
    first, second = (p.run_id for p in spec.points())
    register = runner._register_points

    def then_another_process_drops(db, s, plans):  # the other process, between plan and run
        register(db, s, plans)
        db.drop_unstarted(s.name, [first])

    monkeypatch.setattr(runner, "_register_points", then_another_process_drops)
    summary = run_sweep(spec, tmp_path / "r.db", executor="inline", progress=False)
    assert summary.failed == [] and summary.ran == 2
    with ResultsStore(tmp_path / "r.db") as store:
        rows = {r["run_id"]: r for r in store.runs(sweep="tiny")}
        assert rows[second]["status"] == "completed" and store.epochs(second)


def test_export_settings_make_the_files_and_a_lossy_file_is_measured_itself(
    tmp_path: Path,
) -> None:
    """A second sweep over the same run directories (``--runs-dir``) with ``export: {onnx:
    none, float_dtype: float16}`` trains nothing: it writes torch-only float16 files beside
    the served ones, evaluates each on the test split, and its report leads with that
    figure. The first sweep's files stay as they were."""
    from pqcompress.codec.run_export import export_best
    from pqcompress.report import ReportOptions, build_report

    base = tiny_spec(grid={"bits": [4]}, train={"epochs": 2, "batch_size": 32, "lr": 0.05,
                                                "max_steps_per_epoch": 3, "best_on": "val"})  # fmt: skip
    served, runs_dir = SweepSpec.from_dict(base), tmp_path / "runs"
    assert run_sweep(served, tmp_path / "r.db", runs_dir=runs_dir, progress=False,
                     executor="inline").failed == []  # fmt: skip
    with ResultsStore(tmp_path / "r.db") as store:
        (first,) = store.runs()
    served_file = Path(first["pqz_path"])
    assert served_file.name == "model.pqz" and pqcompress.codec.read(served_file)[0]["graphs"]
    mtime = served_file.stat().st_mtime_ns

    edge = SweepSpec.from_dict({**base, "export": {"onnx": "none", "float_dtype": "float16"}})
    db = tmp_path / "edge.db"
    assert run_sweep(edge, db, runs_dir=runs_dir, progress=False, executor="inline").failed == []
    with ResultsStore(db) as store:
        (row,) = store.runs()
    assert "picked up the finished run" in (Path(row["run_dir"]) / "sweep.log").read_text()
    assert Path(row["pqz_path"]).name == "model-onnx-none-float16.pqz"
    assert served_file.stat().st_mtime_ns == mtime and row["pqz_bytes"] < first["pqz_bytes"]
    manifest, _ = pqcompress.codec.read(row["pqz_path"])
    assert manifest["lossy"] and not manifest.get("graphs")
    assert manifest["metadata"]["export"] == {"onnx": "none", "float_dtype": "float16"}
    result = json.loads(row["result"]) if isinstance(row["result"], str) else row["result"]
    file_acc = result["file"]["test_acc"]
    assert result["file"]["lossy"] and 0.0 <= file_acc <= 1.0 and result["file"]["n"] > 0
    out = tmp_path / "rep"
    build_report(db, out, ReportOptions(plots=False))
    runs = json.loads((out / "runs.json").read_text())
    assert runs["records"][0]["file_test_acc_pct"] == pytest.approx(100 * file_acc, abs=1e-3)
    points = json.loads((out / "points.json").read_text())["records"]
    assert points[0]["test_acc_pct_mean"] == pytest.approx(100 * file_acc)

    # one file, asked for with other settings, is written again; with the same, reused
    pqz = export_best(Path(row["run_dir"]), served_file, **edge.export.options())
    assert pqcompress.codec.read(pqz)[0]["lossy"] and pqz.stat().st_mtime_ns != mtime
    mtime = pqz.stat().st_mtime_ns
    export_best(Path(row["run_dir"]), pqz, **edge.export.options())
    assert pqz.stat().st_mtime_ns == mtime


def test_the_cli_export_flags_override_the_files_settings(tmp_path: Path, capsys) -> None:
    from sweep_support import write_spec

    from pqcompress.cli.main import main

    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec(grid={"bits": [4]}))
    db = tmp_path / "r.db"
    argv = ["sweep", str(spec), "--store", str(db), "--executor", "inline", "--no-progress"]
    assert main([*argv, "--onnx", "none", "--float16"]) == 0
    with ResultsStore(db) as store:
        (row,) = store.runs()
    assert Path(row["pqz_path"]).name == "model-onnx-none-float16.pqz"
    with pytest.raises(SystemExit):
        main([*argv, "--onnx", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err
