"""Read one sweep from a results store (``pqcompress.results``; schema in
``pqcompress.results.schema``), read-only."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pqcompress.report.errors import ReportError, choose
from pqcompress.results import ResultsStore, StoreError
from pqcompress.results.schema import FINISHED_STATUSES

FINISHED = FINISHED_STATUSES


# the runs table's columns that a Run holds as they are stored
_AS_STORED = (
    "status", "error", "run_dir", "best_epoch", "best_test_acc", "train_acc_at_best",
    "density_at_best", "epochs_run", "pqz_path", "pqz_bytes", "float32_bytes", "wall_time_s",
    "finished_at",
)  # fmt: skip


@dataclass(frozen=True)
class Epoch:
    """One metrics line of a run (accuracies and density are fractions)."""

    epoch: int
    train_acc: float | None
    test_acc: float | None
    val_acc: float | None
    density: float | None
    lr: float | None


@dataclass(frozen=True)
class Run:
    """One row of the ``runs`` table, with the grid coordinates read from its config."""

    run_id: str
    point_index: int
    params: dict[str, Any]
    config: dict[str, Any]
    status: str
    error: str | None
    run_dir: str | None
    best_epoch: int | None
    best_test_acc: float | None
    train_acc_at_best: float | None
    density_at_best: float | None
    epochs_run: int | None
    pqz_path: str | None
    pqz_bytes: int | None
    float32_bytes: int | None
    wall_time_s: float | None
    finished_at: str | None
    result: dict[str, Any]
    epochs: tuple[Epoch, ...] = field(default=(), repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def selection(self) -> str:
        """What the run's training chose its best epoch on: ``train.best_on`` ("val" or
        "test"; runs from before the setting existed chose on test)."""
        train = self.config.get("train")
        return str(train.get("best_on", "test")) if isinstance(train, dict) else "test"

    @property
    def test_acc_at_best_val(self) -> float | None:
        """Test accuracy at the epoch of the highest validation accuracy (the first such
        epoch), from the per-epoch records; None without validation records."""
        rows = [e for e in self.epochs if e.val_acc is not None and e.test_acc is not None]
        if not rows:
            return None
        best = max(rows, key=lambda e: (e.val_acc, -e.epoch))
        return best.test_acc

    @property
    def headline_epoch(self) -> int | None:
        """The epoch :attr:`headline_acc` is taken at."""
        if self.headline_protocol == "val":
            rows = [e for e in self.epochs if e.val_acc is not None and e.test_acc is not None]
            return max(rows, key=lambda e: (e.val_acc, -e.epoch)).epoch
        return self.best_epoch

    @property
    def headline_density(self) -> float | None:
        """The density at :attr:`headline_epoch` (the run's own best epoch's, failing a record)."""
        epoch = self.headline_epoch
        row = next((e for e in self.epochs if e.epoch == epoch), None)
        return row.density if row is not None and row.density is not None else self.density_at_best

    @property
    def best_val_recorded(self) -> float | None:
        """The highest validation accuracy of the run's epochs (None without records)."""
        vals = [e.val_acc for e in self.epochs if e.val_acc is not None]
        return max(vals) if vals else None

    @property
    def test_acc_last(self) -> float | None:
        """Test accuracy of the last recorded epoch."""
        return self.epochs[-1].test_acc if self.epochs else None

    @property
    def headline_protocol(self) -> str:
        """How :attr:`headline_acc` was chosen: "val" (test accuracy at the best validation
        epoch), "post" (the model compressed after training) or "test" (no validation
        records: the run's own best epoch, chosen on test)."""
        if self.result.get("post"):
            return "post"
        return "val" if self.test_acc_at_best_val is not None else "test"

    @property
    def file_test_acc(self) -> float | None:
        """The test accuracy of the exported file itself, measured when the file is lossy (a
        sweep's ``export: {float_dtype: float16}``); None otherwise."""
        file = self.result.get("file")
        acc = file.get("test_acc") if isinstance(file, dict) else None
        return float(acc) if acc is not None else None

    @property
    def headline_acc(self) -> float | None:
        """The accuracy reports lead with: the test accuracy at the best validation epoch,
        whatever the run's own ``best_on`` was (recomputed from its epochs), so no figure is
        chosen on the test set; see :attr:`headline_protocol`. A lossy file exported from
        that epoch (``best_on: val``) is measured itself: its figure is the one given."""
        protocol = self.headline_protocol
        if protocol != "val":
            return self.best_test_acc
        if self.file_test_acc is not None and self.selection == "val":
            return self.file_test_acc
        return self.test_acc_at_best_val

    @property
    def compression(self) -> dict[str, Any] | None:
        comp = self.config.get("compression")
        return comp if isinstance(comp, dict) else None

    def _setting(self, key: str, off_in: str) -> Any:
        """``compression.<key>``, or None without compression or in mode ``off_in`` (where
        the setting does nothing)."""
        comp = self.compression
        return None if comp is None or comp.get("mode") == off_in else comp.get(key)

    @property
    def alpha(self) -> float:
        """Pruning aggressiveness; 0 without compression or in quantize-only mode."""
        return float(self._setting("alpha", "quantize") or 0.0)

    @property
    def bits(self) -> int:
        """Bits per weight; 32 without compression or in prune-only mode."""
        return int(self._setting("bits", "prune") or 32)

    @property
    def target_density(self) -> float | None:
        """The density the run asked for (``compression.target_density``), or None."""
        value = self._setting("target_density", "")
        return float(value) if value is not None else None

    @property
    def seed(self) -> int | None:
        train = self.config.get("train") or {}
        return train.get("seed")

    @property
    def setting(self) -> tuple[tuple[str, str], ...]:
        """The run's sweep parameters without its seed: runs that differ only by seed share it."""
        return tuple(
            (k, repr(v)) for k, v in self.params.items() if k not in ("seed", "train.seed")
        )

    @property
    def lr(self) -> float | None:
        train = self.config.get("train") or {}
        return train.get("lr")

    @property
    def rc(self) -> float | None:
        """RC = density * bits / 32 (docs/method.md §2); None until the run has a density."""
        if self.density_at_best is None:
            return None
        return self.density_at_best * self.bits / 32

    @property
    def confusion(self) -> tuple[list[list[int]], list[str]] | None:
        rep = self.result.get("test_report_at_best") or {}
        cm = rep.get("confusion_matrix")
        if not cm:
            return None
        names = rep.get("class_names") or [str(i) for i in range(len(cm))]
        return cm, [str(n) for n in names]

    def short_label(self) -> str:
        """``α=0.5, 4b``, or for a density target ``5% dens., 4b``; then what differs from the
        defaults: ``+fixed α`` (some layers keep an alpha of their own: overrides or
        solve_min_share), ``sticky`` (mask), ``in place`` (update), the rounding if not nearest."""
        comp = self.compression or {}
        td = self.target_density
        if td is None:
            text, extras = f"α={self.alpha:g}, {self.bits}b", []
        else:
            text = f"{100 * td:g}% dens., {self.bits}b"
            extras = ["+fixed α"] if comp.get("overrides") or comp.get("solve_min_share") else []
            extras += ["sticky"] if comp.get("mask") == "sticky" else []
        extras += ["in place"] if comp.get("update") == "inplace" else []
        rounding = comp.get("rounding")
        extras += [str(rounding)] if rounding not in (None, "nearest") else []
        extras += [f"({v})" for v in self.notes.values()]
        return " ".join([text, *extras])

    @property
    def notes(self) -> dict[str, Any]:
        """Sweep parameters that set nothing in the config (a label a store's owner gave some
        runs, e.g. which code version made them): the parameters the config cannot show."""
        sections = [self.config] + [
            self.config[k]
            for k in ("compression", "train", "data")
            if isinstance(self.config.get(k), dict)
        ]
        out = {}
        for key, value in self.params.items():
            node: Any = self.config
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None and not any(key in sec for sec in sections):
                out[key] = value
        return out

    def label(self) -> str:
        lr = self.lr
        return f"α={self.alpha:g} b={self.bits}" + (f" lr={lr:g}" if lr is not None else "")


@dataclass(frozen=True)
class Sweep:
    """All runs of one sweep, in point order."""

    store: Path
    name: str
    runs: tuple[Run, ...]
    meta: dict[str, str]

    @property
    def finished(self) -> tuple[Run, ...]:
        return tuple(r for r in self.runs if r.finished)

    @property
    def measures_files(self) -> bool:
        """Whether any run's accuracy is that of its lossy exported file (``file_test_acc``)."""
        return any(r.file_test_acc is not None for r in self.runs)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def common(self, key: str) -> str:
        """A top-level config value shared by the runs (model, dataset), or 'a, b' if mixed."""
        values = sorted({str(r.config.get(key, "?")) for r in self.runs})
        return ", ".join(values)


def _open(path: Path) -> ResultsStore:
    if not path.is_file():
        raise ReportError(f"results store '{path}' does not exist (run `pqcompress sweep` first)")
    try:
        store = ResultsStore(path, readonly=True)
        store.db.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
    except (StoreError, sqlite3.DatabaseError) as exc:
        raise ReportError(
            f"'{path}' is not a pqcompress results store (SQLite with a 'runs' table): {exc}"
        ) from None
    return store


def _run(row: dict[str, Any], epochs: list[dict[str, Any]]) -> Run:
    """A ``runs`` row (JSON columns decoded by the store) and its epoch rows, as a Run."""
    return Run(
        run_id=row["run_id"],
        point_index=int(row["point_index"]),
        **{k: row[k] if isinstance(row[k], dict) else {} for k in ("params", "config", "result")},
        epochs=tuple(
            Epoch(e["epoch"], e["train_acc"], e["test_acc"], e["val_acc"], e["density"], e["lr"])
            for e in epochs
        ),
        **{k: row[k] for k in _AS_STORED},
    )


def list_sweeps(path: str | Path) -> list[str]:
    """Names of the sweeps in a store, sorted."""
    with _open(Path(path)) as store:
        return store.sweeps()


def read_sweep(path: str | Path, sweep: str | None = None) -> Sweep:
    """Load a sweep's runs and epochs; ``sweep`` may be omitted when the store holds only one."""
    path = Path(path)
    with _open(path) as store:
        try:
            meta = store.meta()
            sweep = choose(store.sweeps(), sweep, what="sweep", where=path, option="--sweep")
            rows = sorted(store.runs(sweep), key=lambda r: (r["point_index"], r["run_id"]))
            runs = tuple(_run(r, store.epochs(r["run_id"])) for r in rows)
        except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: a column's bad JSON
            raise ReportError(f"cannot read results store '{path}': {exc}") from None
    return Sweep(store=path, name=sweep, runs=runs, meta=meta)
