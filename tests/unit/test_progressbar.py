"""progressbar.rich_bar: the one bar of training and sweeps, its text field placed as asked."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import MofNCompleteColumn, TextColumn, TimeRemainingColumn

from pqcompress.progressbar import rich_bar


def _field_index(bar) -> int:
    return next(
        i
        for i, c in enumerate(bar.columns)
        if isinstance(c, TextColumn) and "fields" in c.text_format
    )


def test_the_field_goes_before_or_after_the_times() -> None:
    after, before = rich_bar("stats"), rich_bar("counts", field_before_times=True, stderr=True)
    assert _field_index(after) == len(after.columns) - 1
    assert isinstance(before.columns[_field_index(before) - 1], MofNCompleteColumn)
    assert isinstance(after.columns[-2], TimeRemainingColumn)
    assert before.console.stderr and not after.console.stderr


def test_a_task_renders_its_description_count_and_field() -> None:
    bar = rich_bar("stats")
    bar.add_task("epoch 2/5", total=10, completed=3, stats="loss 0.41")
    out = io.StringIO()
    Console(file=out, width=120).print(bar.make_tasks_table(bar.tasks))
    rendered = out.getvalue()
    assert "epoch 2/5" in rendered and "3/10" in rendered and "loss 0.41" in rendered
