"""Reports lead with the test accuracy at the best validation epoch, recomputed from each
run's epochs, whatever the run chose its best epoch on; the last epoch is shown beside it."""

from __future__ import annotations

import dataclasses

from pqcompress.report.store import Epoch, Run


def _run(epochs, *, best_on="test", best_epoch=2, best_test=0.9, post=None) -> Run:
    return Run(
        run_id="r" * 12, point_index=0, params={}, config={"train": {"best_on": best_on}},
        status="completed", error=None, run_dir=None, best_epoch=best_epoch,
        best_test_acc=best_test, train_acc_at_best=0.9, density_at_best=0.5, epochs_run=len(epochs),
        pqz_path=None, pqz_bytes=None, float32_bytes=None, wall_time_s=1.0, finished_at=None,
        result={"post": post} if post else {}, epochs=tuple(epochs),
    )  # fmt: skip


EPOCHS = [
    Epoch(1, 0.5, 0.70, 0.80, 0.9, 0.1),
    Epoch(2, 0.6, 0.90, 0.60, 0.8, 0.1),  # the best test accuracy: chosen on test, it flatters
    Epoch(3, 0.7, 0.75, 0.80, 0.7, 0.1),  # ties the best validation accuracy: the first wins
    Epoch(4, 0.8, 0.74, 0.70, 0.6, 0.1),
]


def test_a_run_chosen_on_test_is_reported_at_its_best_validation_epoch():
    run = _run(EPOCHS)
    assert run.selection == "test"
    assert run.headline_protocol == "val" and run.headline_epoch == 1
    assert run.headline_acc == 0.70 and run.headline_density == 0.9
    assert run.test_acc_at_best_val == 0.70 and run.test_acc_last == 0.74
    assert run.best_test_acc == 0.9  # the run's own figure stays in the runs table


def test_runs_without_validation_or_compressed_after_training_keep_their_figure():
    no_val = _run(
        [Epoch(1, 0.5, 0.7, None, 0.9, 0.1), Epoch(2, 0.6, 0.8, None, 0.8, 0.1)], best_test=0.8
    )
    assert no_val.headline_protocol == "test" and no_val.headline_acc == 0.8
    assert no_val.headline_epoch == 2 and no_val.test_acc_at_best_val is None
    post = _run(EPOCHS, post={"test_acc": 0.5}, best_test=0.5)
    assert post.headline_protocol == "post" and post.headline_acc == 0.5
    assert _run(EPOCHS, best_on="val").selection == "val"
    assert (
        Run.selection.fget(_run(EPOCHS).__class__(**{**_run(EPOCHS).__dict__, "config": {}}))
        == "test"
    )


def test_best_over_a_learning_rate_is_chosen_on_validation():
    """Two learning rates at one (alpha, bits): the cell takes the one with the higher
    validation accuracy, and reports its test accuracy at that epoch."""
    from pathlib import Path

    from pqcompress.report.grid import build_grid
    from pqcompress.report.store import Sweep

    def run(i, lr, val, test):
        r = _run([Epoch(1, 0.5, test, val, 1.0, lr)], best_test=test, best_epoch=1)
        return dataclasses.replace(r, run_id=f"{i}" * 12, point_index=i, params={"lr": lr},
                                   config={"train": {"best_on": "val", "lr": lr}})  # fmt: skip

    lucky_on_test, better_on_val = run(0, 0.1, 0.70, 0.95), run(1, 0.01, 0.80, 0.85)
    grid = build_grid(Sweep(Path("x.db"), "s", (lucky_on_test, better_on_val), {}))
    (cell,) = grid.cells.values()
    assert cell.best.run_id == better_on_val.run_id and cell.acc == 0.85
