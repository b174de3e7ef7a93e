"""Whole-sweep progress: a rich bar on a terminal (done/running/failed, ETA), plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from pqcompress.progressbar import rich_bar


class SweepProgress:
    """Counts points and shows them; ``enabled=False`` prints nothing."""

    def __init__(self, enabled: bool, total: int, *, done: int = 0, name: str = "sweep") -> None:
        self.enabled = enabled
        self.total, self.done, self.failed, self.running = total, done, 0, 0
        self.name = name
        self._start = time.perf_counter()
        self._finished_here = 0
        self._bar: Any = None
        self._task: Any = None
        if enabled and sys.stderr.isatty():
            self._bar = rich_bar("counts", field_before_times=True, stderr=True)

    def __enter__(self) -> SweepProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(
                self.name, total=self.total, completed=self.done, counts=self._counts()
            )
        elif self.enabled:
            self._line(f"{self.total} point(s), {self.done} already finished")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def started(self, label: str) -> None:
        self.running += 1
        self._update(f"start  {label}")

    def finished(self, label: str, status: str, detail: str = "") -> None:
        self.running = max(0, self.running - 1)
        if status == "failed":
            self.failed += 1
        self.done += 1
        self._finished_here += 1
        self._update(f"{status:<13} {label}{'  ' + detail if detail else ''}", advance=1)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        elif self.enabled:
            self._line(text)

    def _counts(self) -> str:
        return f"ok {self.done - self.failed} | running {self.running} | failed {self.failed}"

    def eta_s(self) -> float | None:
        """Seconds left at this session's rate (None before the first point finishes)."""
        if not self._finished_here:
            return None
        rate = (time.perf_counter() - self._start) / self._finished_here
        return rate * (self.total - self.done)

    def _update(self, text: str, advance: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, counts=self._counts())
            if advance:
                self._bar.console.print(text, markup=False, highlight=False)
        elif self.enabled:
            eta = self.eta_s()
            tail = f" | ETA {eta / 60:.1f} min" if eta is not None and advance else ""
            self._line(f"[{self.done}/{self.total}] {text} ({self._counts()}{tail})")

    @staticmethod
    def _line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
