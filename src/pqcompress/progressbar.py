"""The rich progress bar shared by training and sweeps: description, bar, done/total, elapsed
time and ETA, and one free text field (``task.fields[field]``) before the times or after them."""

from __future__ import annotations

from typing import Any


def rich_bar(field: str, *, field_before_times: bool = False, stderr: bool = False) -> Any:
    """A ``rich.progress.Progress`` (not started) whose tasks carry the text field ``field``;
    ``stderr`` draws on standard error instead of standard output."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    text = TextColumn(f"{{task.fields[{field}]}}")
    head = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    times = [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    columns = [*head, text, *times] if field_before_times else [*head, *times, text]
    return Progress(*columns, console=Console(stderr=stderr))
