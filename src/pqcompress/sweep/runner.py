"""``run_sweep``: plan the points against the store, run the rest on an executor, record results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pqcompress import __version__, dirlock
from pqcompress.errors import BusyError
from pqcompress.execute import EXECUTORS, Executor, Job, make_executor
from pqcompress.results import ResultsStore, StoreError, is_complete, utc_now
from pqcompress.sweep.progress import SweepProgress
from pqcompress.sweep.spec import ExportSettings, SweepPoint, SweepSpec
from pqcompress.sweep.worker import execute_point, point_failed

POINT_JOB = Job(fn=execute_point, failure=point_failed, preload=("pqcompress.sweep.preload",))
"""What each executor worker runs: one sweep point (train, export, its row), never raising."""

# Planned actions for a point.
SKIP, RUN, RESUME, RETRY, SKIP_FAILED = "skip", "run", "resume", "retry", "skip-failed"
BUSY = "busy"  # another sweep process holds the point's claim: left to it


@dataclass(frozen=True)
class PlannedPoint:
    """A point, its stored row (None when new), its run directory and what the sweep will do."""

    point: SweepPoint
    row: dict[str, Any] | None
    run_dir: Path
    action: str


@dataclass
class SweepSummary:
    """What a sweep ended with: one store row per point (spec order) and the failed ones."""

    sweep: str
    rows: list[dict[str, Any]]
    ran: int = 0
    skipped: int = 0
    startup_s: float | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)
    busy: list[dict[str, Any]] = field(default_factory=list)  # {point_index, params, holder}

    @property
    def ok(self) -> bool:
        return not self.failed


def default_runs_dir(store_path: str | Path) -> Path:
    """``<store stem>_runs`` beside the database file."""
    p = Path(store_path)
    return p.with_name(f"{p.stem}_runs")


def plan_sweep(
    spec: SweepSpec,
    store: ResultsStore | None,
    runs_dir: str | Path,
    *,
    retry_failed: bool = True,
) -> list[PlannedPoint]:
    """Decide per point: skip (finished and complete), run (new), resume (a run was started),
    retry (failed; ``skip-failed`` with ``retry_failed=False``), busy (another sweep process
    holds the point's claim now). A row left ``running`` by a process that is gone (its claim
    is free) is resumed."""
    assert spec.name
    plans = []
    for point in spec.points():
        row = store.run(point.run_id) if store is not None else None
        run_dir = Path(runs_dir) / spec.name / point.run_id
        if row and row.get("run_dir") and Path(row["run_dir"]).is_dir():
            run_dir = Path(row["run_dir"])  # keep resuming where it started
        if is_complete(row):
            action = SKIP
        elif dirlock.holder(run_dir, dirlock.POINT_CLAIM) is not None:
            action = BUSY
        elif row is not None and row["status"] == "failed":
            action = RETRY if retry_failed else SKIP_FAILED
        elif (row is not None and row["status"] in ("running", "interrupted")) or (
            run_dir / "checkpoint.pt"
        ).is_file():
            action = RESUME
        else:
            action = RUN
        plans.append(PlannedPoint(point, row, run_dir, action))
    return plans


def run_sweep(
    spec: SweepSpec,
    store: ResultsStore | str | Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    runs_dir: str | Path | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    retry_failed: bool = True,
) -> SweepSummary:
    """Run every point of ``spec`` that the store does not hold as finished; record each result.

    Every point is validated before anything runs. Each runs ``train_model(config, run_dir,
    resume=True)`` in ``<runs_dir>/<sweep name>/<run_id>/`` (default runs_dir: ``<store
    stem>_runs`` beside the database), then its best epoch is exported to ``model.pqz`` as
    ``spec.export`` says.
    A point that raises or whose worker dies is recorded as failed and the sweep goes on;
    ``SweepSummary.failed`` lists them. Ctrl-C marks the running points interrupted.
    """
    assert spec.name
    EXECUTORS.get(executor)  # an unknown name fails before any work
    if executor == "local":  # the fork server warms up while the driver plans and opens the store
        from pqcompress.execute.local import start_forkserver

        start_forkserver(preload=POINT_JOB.preload)
    with _opened(store) as db:
        runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir(db.path)
        plans = plan_sweep(spec, db, runs_root, retry_failed=retry_failed)  # validates all
        todo = [p for p in plans if p.action in (RUN, RESUME, RETRY)]
        runner = (  # fails before any write
            make_executor(executor, POINT_JOB, workers=workers, ray_address=ray_address)
            if todo
            else None
        )
        _register_points(db, spec, plans)
        stale = [p.point.run_id for p in todo if p.row and p.row["status"] == "running"]
        if stale:  # left running by a sweep process that is gone
            db.mark(stale, "interrupted")
        busy: dict[str, str] = {
            p.point.run_id: dirlock.holder(p.run_dir, dirlock.POINT_CLAIM) or "another process"
            for p in plans
            if p.action == BUSY
        }
        ran = _execute(
            db, runner, plans, todo, busy, executor=executor, progress=progress, name=spec.name,
            export=spec.export,
        )  # fmt: skip
        stored = {r["run_id"]: r for r in (db.run(p.point.run_id) for p in plans) if r}
        rows = [stored[p.point.run_id] for p in plans if p.point.run_id in stored]
        return SweepSummary(
            sweep=spec.name,
            rows=rows,
            ran=ran,
            skipped=len(plans) - ran - len(busy),
            startup_s=getattr(runner, "startup_s", None),
            failed=[r for r in rows if r["status"] == "failed" and r["run_id"] not in busy],
            busy=[
                {"point_index": p.point.index, "params": p.point.params, "holder": busy[rid]}
                for p in plans
                if (rid := p.point.run_id) in busy
            ],
        )


def _register_points(db: ResultsStore, spec: SweepSpec, plans: list[PlannedPoint]) -> None:
    """Record the spec and every planned point (dropping unstarted points it no longer has)."""
    db.set_meta(
        {
            f"sweep.{spec.name}.spec": spec.to_yaml(),
            f"sweep.{spec.name}.updated_at": utc_now(),
            "pqcompress_version": __version__,
        }
    )
    db.drop_unstarted(spec.name, (p.point.run_id for p in plans))
    db.add_points(spec.name, [_point_row(p) for p in plans])


def _point_row(plan: PlannedPoint) -> dict[str, Any]:
    """A planned point as the store records it (``ResultsStore.add_points``)."""
    p = plan.point
    return {
        "run_id": p.run_id,
        "point_index": p.index,
        "params": p.params,
        "config": p.config.to_dict(),
    }


def _execute(
    db: ResultsStore,
    runner: Executor | None,
    plans: list[PlannedPoint],
    todo: list[PlannedPoint],
    busy: dict[str, str],
    *,
    executor: str,
    progress: bool,
    name: str,
    export: ExportSettings | None = None,
) -> int:
    """Run the ``todo`` points on ``runner``, recording each start and result as it comes;
    return how many ran here. Each point is claimed (its run directory's ``.claim`` lock)
    just before it starts: a point another sweep process claimed meanwhile is added to
    ``busy`` and left to it, one it finished meanwhile is skipped. An interruption marks the
    points still running as interrupted; every claim is released at the end."""
    by_id = {p.point.run_id: p for p in todo}
    tasks = [
        {"run_id": p.point.run_id, "config": p.point.config.to_dict(), "run_dir": str(p.run_dir),
         "export": (export or ExportSettings()).options(),
         "pqz_name": (export or ExportSettings()).file_name()}
        for p in todo
    ]  # fmt: skip
    running: set[str] = set()
    claimed: dict[str, Path] = {}
    ran = 0
    done = sum(p.action in (SKIP, SKIP_FAILED) for p in plans)
    with SweepProgress(progress, len(plans), done=done, name=name) as bar:

        def on_start(_i: int, task: dict[str, Any]) -> bool:
            nonlocal ran
            rid, run_dir = task["run_id"], Path(task["run_dir"])
            try:
                dirlock.acquire(run_dir, dirlock.POINT_CLAIM, what="sweep point")
            except BusyError:
                busy[rid] = dirlock.holder(run_dir, dirlock.POINT_CLAIM) or "another process"
                bar.message(f"busy          {by_id[rid].point.label}  run by {busy[rid]}")
                return False
            claimed[rid] = run_dir
            if is_complete(db.run(rid)):  # another process finished it since the plan
                dirlock.release(run_dir, dirlock.POINT_CLAIM)
                del claimed[rid]
                bar.finished(by_id[rid].point.label, "skipped", "finished by another process")
                return False
            # another sweep process on this store with an edited copy of the file may have
            # dropped the row of this unstarted point meanwhile: put it back (a no-op otherwise)
            db.add_points(name, [_point_row(by_id[rid])])
            db.mark_running(rid, run_dir=task["run_dir"], executor=executor)
            running.add(rid)
            ran += 1
            bar.started(by_id[rid].point.label)
            return True

        def on_result(_i: int, outcome: dict[str, Any]) -> None:
            rid = outcome["run_id"]
            running.discard(rid)
            values = dict(outcome.get("values") or {})
            values["status"] = outcome["status"]
            values["error"] = outcome.get("error")
            values["finished_at"] = utc_now()
            epochs = outcome.get("epochs") or None  # None: keep the stored epoch rows
            try:
                db.record_run(rid, values, epochs)
            finally:
                if rid in claimed:
                    dirlock.release(claimed.pop(rid), dirlock.POINT_CLAIM)
            acc = values.get("best_test_acc")
            detail = f"test {100 * acc:.2f}%" if acc is not None else ""
            if outcome["status"] == "failed":
                detail = (outcome.get("error") or "").splitlines()[0][:200]
            bar.finished(by_id[rid].point.label, outcome["status"], detail)
            if outcome["status"] == "interrupted":  # the point saw Ctrl-C: the sweep stops
                raise KeyboardInterrupt

        try:
            if runner is not None:
                with runner:
                    runner.run(tasks, on_start, on_result)
        except BaseException:
            if running:
                with contextlib.suppress(StoreError):
                    db.mark(sorted(running), "interrupted")
            raise
        finally:
            for run_dir in claimed.values():
                dirlock.release(run_dir, dirlock.POINT_CLAIM)
    return ran


@contextlib.contextmanager
def _opened(store: ResultsStore | str | Path) -> Iterator[ResultsStore]:
    if isinstance(store, ResultsStore):
        yield store
        return
    db = ResultsStore(store)
    try:
        yield db
    finally:
        db.close()
