"""A report table: a display matrix (Markdown/HTML) plus tidy records (CSV/JSON), and writers."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pqcompress.atomic import write_text_atomic


@dataclass(frozen=True)
class Table:
    """``header``/``body`` are what people read; ``records`` are one dict per fact, raw values.

    Markdown shows the matrix and the notes; CSV holds the records (columns ``columns``);
    JSON holds title, notes, records and the display matrix.
    """

    name: str
    title: str
    header: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    columns: tuple[str, ...]
    records: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        name: str,
        title: str,
        header: Sequence[str],
        body: Sequence[Sequence[str]],
        records: Sequence[dict[str, Any]],
        notes: Sequence[str] = (),
        *,
        empty: Sequence[str] = ("variant",),
    ) -> Table:
        """A table whose CSV columns are its records' keys (``empty`` when it has none)."""
        recs = tuple(records)
        columns = tuple(recs[0]) if recs else tuple(empty)
        return cls(name, title, tuple(header), tuple(map(tuple, body)), columns, recs, tuple(notes))

    @classmethod
    def from_columns(
        cls,
        name: str,
        title: str,
        columns: Sequence[Column],
        rows: Iterable[Any],
        notes: Sequence[str] = (),
    ) -> Table:
        """A table whose display and records come from one list of columns, each read from
        every row: the header and its cells, the record key and its value, kept together."""
        shown = [c for c in columns if c.header is not None]
        kept = [c for c in columns if c.key is not None]
        body, records = [], []
        for row in rows:
            body.append(tuple(c.text(row) for c in shown))
            records.append({str(c.key): c.raw(row) for c in kept})
        header = tuple(str(c.header) for c in shown)
        keys = tuple(str(c.key) for c in kept)
        return cls(name, title, header, tuple(body), keys, tuple(records), tuple(notes))

    def to_markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.body:
            lines.append("| " + " | ".join(_md(h) for h in self.header) + " |")
            lines.append("|" + "|".join(" --- " for _ in self.header) + "|")
            lines.extend("| " + " | ".join(_md(c) for c in row) + " |" for row in self.body)
        else:
            lines.append("(no rows)")
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "notes": list(self.notes),
            "columns": list(self.columns),
            "records": [{k: _json_value(v) for k, v in r.items()} for r in self.records],
            "display": {"header": list(self.header), "body": [list(r) for r in self.body]},
        }

    def write(self, out_dir: Path) -> list[Path]:
        """Write ``<name>.md``, ``<name>.csv`` and ``<name>.json`` into ``out_dir``."""
        md, cs, js = (out_dir / f"{self.name}.{ext}" for ext in ("md", "csv", "json"))
        # each file is replaced whole or left as it was (a full disk never leaves half a file)
        write_text_atomic(md, self.to_markdown())
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=list(self.columns), extrasaction="ignore")
        writer.writeheader()
        for r in self.records:
            writer.writerow({k: _csv_value(r.get(k)) for k in self.columns})
        write_text_atomic(cs, buf.getvalue())
        write_text_atomic(js, json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")
        return [md, cs, js]


@dataclass(frozen=True)
class Column:
    """One column of a :class:`Table` built by ``Table.from_columns``: ``header`` and
    ``show(row)`` are what a reader sees (no header: in the records only); ``key`` and
    ``value(row)`` the raw record (no key: on display only). ``show`` defaults to
    ``fmt(value(row))``, so a column that shows its record's value writes it once."""

    header: str | None
    key: str | None = None
    value: Callable[[Any], Any] | None = None
    show: Callable[[Any], str] | None = None
    fmt: Callable[[Any], str] = str

    def raw(self, row: Any) -> Any:
        return None if self.value is None else self.value(row)

    def text(self, row: Any) -> str:
        return self.show(row) if self.show is not None else self.fmt(self.raw(row))


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage without the sign (0.8721 -> '87.21'); '-' for None."""
    return "-" if x is None else f"{100 * x:.{digits}f}"


def num(x: float | None, fmt: str = ".2f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return format(x, fmt)


def pct_value(x: float | None) -> float | None:
    """Fraction -> percent, rounded to 4 decimals, for records."""
    return None if x is None else round(100 * x, 4)


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None below two values) of a non-empty sequence:
    the one rule for every "mean ± sd" of the reports (seeds, repeated runs)."""
    if not values:
        raise ValueError("mean_sd of no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def mean_sd_or_none(values: Sequence[float]) -> tuple[float | None, float | None]:
    """``mean_sd``, or (None, None) for no values (a cell or variant without finished runs)."""
    return mean_sd(values) if values else (None, None)
