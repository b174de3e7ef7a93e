"""The report's tables: accuracy (density) grid, Efficiency Score, run list, Table I comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pqcompress.report import reference
from pqcompress.report.grid import Cell, Grid, Score, efficiency_scores
from pqcompress.report.settings import baseline, group_settings, settings_front
from pqcompress.report.store import Run, Sweep
from pqcompress.report.table_format import Column, Table, num, pct, pct_value


def _axes_note(grid: Grid) -> str:
    seeds = "; runs that differ only by seed are averaged (mean ± sample sd), never picked"
    if grid.best_over:
        return (
            "Each cell is the setting with the highest mean test accuracy among the runs at that "
            f"(alpha, bits), i.e. best over: {', '.join(grid.best_over)}{seeds}."
        )
    return f"Each cell holds one setting (no axis but the seed varies at an (alpha, bits)){seeds}."


def _acc_text(cell: Cell) -> str:
    """``82.50 ± 0.11`` (mean ± sd over seeds), or ``82.42`` with one seed."""
    sd = cell.acc_sd
    return pct(cell.acc) + (f" ± {pct(sd)}" if sd is not None else "")


def accuracy_table(grid: Grid) -> Table:
    """Test accuracy % (density %) at the best epoch, alpha rows x bits columns."""
    header = ("alpha \\ bits", *(str(b) for b in grid.bits))
    body, records = [], []
    for alpha in grid.alphas:
        row = [f"{alpha:g}"]
        for bits in grid.bits:
            cell = grid.cell(alpha, bits)
            if cell is None:
                row.append("")
                continue
            best = cell.best
            if best is None:
                row.append(cell.status)
            else:
                more = f" (+{cell.pending} unfinished)" if cell.pending else ""
                row.append(f"{_acc_text(cell)} ({pct(cell.density)}){more}")
            records.append(
                {
                    "alpha": alpha,
                    "bits": bits,
                    "status": cell.status,
                    "test_acc_pct": pct_value(cell.acc),
                    "test_acc_sd_pct": pct_value(cell.acc_sd),
                    "seeds": len(cell.seeds),
                    "seed_run_ids": [r.run_id for r in cell.seeds],
                    "density_pct": pct_value(cell.density),
                    "train_acc_pct": pct_value(best.train_acc_at_best) if best else None,
                    "best_epoch": best.best_epoch if best else None,
                    "lr": best.lr if best else None,
                    "params": best.params if best else None,
                    "run_id": best.run_id if best else None,
                    "runs": len(cell.runs),
                    "finished_runs": sum(r.finished for r in cell.runs),
                    "unfinished_runs": cell.pending,
                }
            )
        body.append(tuple(row))
    notes = [
        "Test accuracy % at the best validation epoch (test only measured; runs without "
        "validation records: their own best epoch, docs/method.md §5) and, in "
        "parentheses, the density % (share of nonzero compressed weights) at that epoch; the "
        "single-run fields of the CSV/JSON (train accuracy, epoch, lr, run_id) are the first seed's.",
        _axes_note(grid),
        "A cell without a finished run shows its status (running, interrupted, pending, failed).",
    ]
    return Table(
        "accuracy_density",
        "Accuracy (density) per alpha x bits",
        header,
        tuple(body),
        tuple(records[0]) if records else ("alpha", "bits", "status"),
        tuple(records),
        tuple(notes),
    )


def efficiency_table(grid: Grid, rhos: Sequence[float]) -> Table:
    """PE = (acc / acc_base)^rho / (density * bits / 32) per rho, alpha and bits."""
    scores = efficiency_scores(grid, rhos)
    base = grid.baseline
    base_acc = grid.baseline_acc
    by_key: dict[tuple[float, float, int], Score] = {(s.rho, s.alpha, s.bits): s for s in scores}
    header = ("rho", "alpha \\ bits", *(str(b) for b in grid.bits))
    body = []
    if base is not None:
        for rho in rhos:
            for alpha in grid.alphas:
                row = [f"{rho:g}", f"{alpha:g}"]
                for bits in grid.bits:
                    s = by_key.get((rho, alpha, bits))
                    cell = grid.cell(alpha, bits)
                    row.append(num(s.value) if s else (cell.status if cell else ""))
                body.append(tuple(row))
    records = [
        {
            "rho": s.rho,
            "alpha": s.alpha,
            "bits": s.bits,
            "efficiency_score": s.value,
            "test_acc_pct": pct_value(s.acc),
            "density_pct": pct_value(s.density),
            "rc": s.rc,
            "baseline_acc_pct": pct_value(base_acc),
            "run_id": s.run.run_id,
        }
        for s in scores
    ]
    if base is None:
        notes = [
            "No finished uncompressed run (alpha 0, 32 bits) in this sweep: the Efficiency Score "
            "needs its accuracy as acc_base (docs/method.md §2), so no scores are given."
        ]
    else:
        notes = [
            "PE = (acc / acc_base)^rho / RC with RC = density * bits / 32 (docs/method.md §2); "
            'PE > 1 reads as "worth it".',
            f"acc_base = {pct(base_acc)}%: the uncompressed setting's mean (alpha 0, 32 bits"
            f"{', best over ' + ', '.join(grid.best_over) if grid.best_over else ''}), "
            f"run {base.run_id[:12]} ({base.label()}).",
            "Each cell scores the setting chosen in the accuracy table, with the means over "
            "its seeds.",
        ]
    columns = (
        "rho",
        "alpha",
        "bits",
        "efficiency_score",
        "test_acc_pct",
        "density_pct",
        "rc",
        "baseline_acc_pct",
        "run_id",
    )
    return Table(
        "efficiency_score",
        "Efficiency Score (PE) per alpha x bits, rho = " + ", ".join(f"{r:g}" for r in rhos),
        header,
        tuple(body),
        columns,
        tuple(records),
        tuple(notes),
    )


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _ratio(run: Run) -> float | None:
    if not run.pqz_bytes or not run.float32_bytes:
        return None
    return run.float32_bytes / run.pqz_bytes


def runs_table(sweep: Sweep) -> Table:
    """Every point of the sweep with its status, error, best epoch, accuracy, size and time."""
    C = Column
    columns = (
        C("#", "point_index", lambda r: r.point_index),
        C("run", "run_id", lambda r: r.run_id, show=lambda r: r.run_id[:12]),
        C("params", "params", lambda r: r.params, fmt=_params_text),
        C(None, "alpha", lambda r: r.alpha),
        C(None, "bits", lambda r: r.bits),
        C(None, "lr", lambda r: r.lr),
        C("status", "status", lambda r: r.status),
        C("best epoch", "best_epoch", lambda r: r.best_epoch, fmt=lambda e: num(e, "d") if e else "-"),
        C("epochs", "epochs_run", lambda r: r.epochs_run, fmt=lambda e: "-" if e is None else num(e, "d")),
        C("selected on", "selection", lambda r: r.selection),
        C("test acc %", "test_acc_pct", lambda r: pct_value(r.best_test_acc), show=lambda r: pct(r.best_test_acc)),
        C("test acc % at best val", "test_acc_at_best_val_pct", lambda r: pct_value(r.test_acc_at_best_val), show=lambda r: pct(r.test_acc_at_best_val)),
        C("test acc % last epoch", "test_acc_last_pct", lambda r: pct_value(r.test_acc_last), show=lambda r: pct(r.test_acc_last)),
        *([C("file test acc %", "file_test_acc_pct", lambda r: pct_value(r.file_test_acc), show=lambda r: pct(r.file_test_acc))]
          if sweep.measures_files else []),
        C(None, "headline_protocol", lambda r: r.headline_protocol),
        C("train acc %", "train_acc_pct", lambda r: pct_value(r.train_acc_at_best), show=lambda r: pct(r.train_acc_at_best)),
        C("density %", "density_pct", lambda r: pct_value(r.density_at_best), show=lambda r: pct(r.density_at_best)),
        C(".pqz bytes", "pqz_bytes", lambda r: r.pqz_bytes, fmt=lambda b: f"{b:,}" if b else "-"),
        C(None, "float32_bytes", lambda r: r.float32_bytes),
        C("x smaller than float32", "ratio_to_float32", _ratio, fmt=lambda x: num(x, ".2f") if x else "-"),
        C("wall s", "wall_time_s", lambda r: r.wall_time_s, fmt=lambda t: num(t, ".1f")),
        C(None, "run_dir", lambda r: r.run_dir),
        C("error", "error", lambda r: r.error, fmt=lambda e: ((e or "").strip().splitlines() or [""])[0][:160]),
    )  # fmt: skip
    counts = sweep.status_counts()
    notes = [
        "Status counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".",
        "x smaller than float32 = bytes of the same parameters as dense float32 / .pqz bytes. "
        "The error column shows the first line; the CSV/JSON hold the whole message.",
        "selected on = what chose each run's best epoch (train.best_on); test acc % is taken "
        "there. The other tables and the plots lead with the test accuracy at the best "
        "validation epoch (recomputed from the epochs: never chosen on test), or the run's "
        "own figure where no validation accuracy was recorded.",
    ]
    if sweep.measures_files:
        notes.append(
            "file test acc % = the exported file's own test accuracy, measured because the "
            "sweep stores values as float16 (export.float_dtype): the headline figure of "
            "those runs."
        )
    return Table.from_columns("runs", "All runs", columns, sweep.runs, notes)


def _mean_ratio(st: Any) -> float | None:
    """The mean over a setting's runs of x smaller than float32 (None: no run has a file)."""
    ratios = [x for x in (_ratio(r) for r in st.runs) if x]
    return sum(ratios) / len(ratios) if ratios else None


def points_table(sweep: Sweep) -> Table:
    """One row per setting (runs that differ only by seed are one setting): accuracy mean ± sd
    over seeds, its difference to the float32 baseline, density, .pqz bytes and how many times
    smaller the file is than the float32 dense weights; the accuracy/size frontier marked."""
    settings = group_settings(sweep)
    base_setting = baseline(settings)
    base = base_setting.acc if base_setting is not None else None
    front = {id(settings[i]) for i in settings_front(settings)}

    def delta(st: Any) -> float | None:
        return 100 * (st.acc - base) if base is not None else None

    C = Column
    columns = (
        C("setting", "setting", lambda st: dict(st.first.setting), show=lambda st: ", ".join(f"{k}={v}" for k, v in st.first.setting) or "base"),
        C(None, "params", lambda st: st.first.params),
        C("seeds", "seeds", lambda st: [r.seed for r in st.runs], show=lambda st: str(len(st.runs))),
        C(None, "run_ids", lambda st: [r.run_id for r in st.runs]),
        C("test acc %", "test_acc_pct_mean", lambda st: 100 * st.acc, show=_mean_sd_text),
        C(None, "test_acc_pct_sd", lambda st: 100 * st.acc_sd if st.acc_sd is not None else None),
        C(None, "test_acc_pct_runs", lambda st: [pct_value(r.headline_acc) for r in st.runs]),
        C("vs float32 (points)", "delta_vs_float32_points", delta, fmt=lambda d: num(d, "+.2f")),
        C("density %", "density_pct_mean", lambda st: pct_value(st.density), show=lambda st: pct(st.density)),
        C(".pqz bytes", "pqz_bytes_mean", lambda st: st.pqz_bytes, fmt=lambda b: f"{round(b):,}" if b else "-"),
        C(None, "pqz_bytes_runs", lambda st: [r.pqz_bytes for r in st.runs]),
        C("x smaller than float32 dense", "ratio_to_float32_mean", _mean_ratio, fmt=lambda x: num(x, ".1f") if x else "-"),
        C("frontier", "frontier", lambda st: id(st) in front, fmt=lambda f: "yes" if f else ""),
    )  # fmt: skip
    notes = [
        "One row per setting; runs that differ only by seed are one setting (mean ± sample sd "
        "over seeds). Test accuracy at the best epoch; 'vs float32' is the difference of the "
        "means to the uncompressed baseline (alpha 0, 32 bits), in points.",
        "x smaller than float32 dense = 4 bytes x stored parameters / .pqz bytes. 'frontier': "
        "no other setting has a smaller file at the same or higher accuracy.",
    ]
    if not settings:
        notes.append("No run has finished yet.")
    return Table.from_columns("points", "Settings: accuracy and size", columns, settings, notes)


def _plain_bits(st: Any) -> int | None:
    """The bit width of a setting that quantizes whole tensors alike (no density target, no
    channel pruning, no per-layer settings; float32 when uncompressed): the settings the
    literature's weight-quantization rows compare with; None for any other."""
    run = st.first
    comp = run.compression
    if comp is None or (run.bits == 32 and run.alpha == 0):
        return 32
    plain = (
        run.bits != 32  # pruning alone is no quantization row
        and comp.get("target_density") is None
        and comp.get("target_flops") is None
        and comp.get("granularity", "element") == "element"
        and not comp.get("overrides")
    )
    return run.bits if plain else None


def literature_table(sweep: Sweep, published: dict[str, Any]) -> Table:
    """Published accuracies at each bit width (``published``: a ``literature_*`` data file)
    beside this sweep's setting at the same bit width that quantizes whole tensors alike (of
    several, the one of the highest validation accuracy, e.g. the ternary code at 2 bits):
    each side's accuracy, its difference to its own float32 model, and our file's size."""
    ours: dict[int, Any] = {}
    for st in group_settings(sweep):
        bits = _plain_bits(st)
        if bits is not None and (bits not in ours or st.choice_acc > ours[bits].choice_acc):
            ours[bits] = st
    our_float = ours.get(32)
    their_float = {r["method"]: float(r["acc"]) for r in published["rows"] if int(r["bits"]) == 32}
    header = ("bits", "method", "their acc %", "their Δ vs float32", "our acc %",
              "our Δ vs float32", "our .pqz bytes", "x smaller than float32 dense")  # fmt: skip
    body, records = [], []
    for row in published["rows"]:
        bits, method, acc = int(row["bits"]), str(row["method"]), float(row["acc"])
        theirs_delta = acc - their_float[method] if method in their_float and bits != 32 else None
        st = ours.get(bits)
        mine = 100 * st.acc if st is not None else None
        mine_delta = (
            100 * (st.acc - our_float.acc)
            if st is not None and our_float is not None and bits != 32
            else None
        )
        ratio = _mean_ratio(st) if st is not None else None
        body.append((
            str(bits), method, num(acc), num(theirs_delta, "+.2f"),
            _mean_sd_text(st) if st is not None else "-", num(mine_delta, "+.2f"),
            f"{round(st.pqz_bytes):,}" if st is not None and st.pqz_bytes else "-",
            num(ratio, ".1f"),
        ))  # fmt: skip
        records.append({
            "bits": bits, "method": method, "their_acc_pct": acc,
            "their_delta_points": theirs_delta, "our_acc_pct": mine,
            "our_acc_sd_pct": 100 * st.acc_sd if st is not None and st.acc_sd else None,
            "our_seeds": st.seeds if st is not None else 0, "our_delta_points": mine_delta,
            "our_pqz_bytes": st.pqz_bytes if st is not None else None, "our_ratio": ratio,
        })  # fmt: skip
    sources = " ".join(
        f"{k}: {v}" + ("" if str(v).endswith(".") else ".")
        for k, v in published.get("sources", {}).items()
    )
    return Table.of(
        "literature",
        f"Beside the literature: {published['study']}",
        header,
        body,
        records,
        (
            "Ours: at each bit width the sweep's setting that quantizes every tensor alike (no "
            "density target or per-layer settings; of several alphas, the one of the highest "
            "validation accuracy), test accuracy at the best validation epoch, mean ± sd over "
            "seeds; Δ: each side against its own float32 "
            "model (ours: the same fine-tuning without P->Q). Ours quantizes the weights only; "
            "x smaller = 4 bytes x parameters / .pqz bytes.",
            f"Sources: {sources}",
            *(
                ["Our files store their values in float16: each accuracy is the file's own."]
                if sweep.measures_files
                else []
            ),
        ),
        empty=("bits", "method"),
    )


def _mean_sd_text(st: Any) -> str:
    text = f"{100 * st.acc:.2f}"
    return text + (f" ± {100 * st.acc_sd:.2f}" if st.acc_sd is not None else "")


def _compared(
    their_acc: Callable[[Any], float], delta: Callable[[Any], float | None]
) -> tuple[Column, ...]:
    """The first columns of a table of a study's grid points beside ours; a row is
    ``(alpha, bits, theirs, cell)`` as ``Grid.matched`` yields it."""
    C = Column
    return (
        C("alpha", "alpha", lambda m: m[0], fmt=lambda a: f"{a:g}"),
        C("bits", "bits", lambda m: m[1]),
        C("acc % theirs", "acc_pct_theirs", lambda m: their_acc(m[2]), fmt=num),
        C("acc % ours", None, show=lambda m: _acc_text(m[3]) if m[3].acc is not None else m[3].status),
        C("Δ acc (pp)", None, show=lambda m: num(delta(m), "+.2f")),
    )  # fmt: skip


def table_i_comparison(grid: Grid, sweep: Sweep, rhos: Sequence[float]) -> Table:
    """The study's Table I (CNN5, CIFAR-10) beside ours for the grid points both have."""
    scores = {(s.rho, s.alpha, s.bits): s.value for s in efficiency_scores(grid, rhos)}

    def delta(m: Any) -> float | None:
        return None if m[3].acc is None else 100 * m[3].acc - m[2][0]

    C = Column
    columns = (
        *_compared(lambda theirs: theirs[0], delta),
        C(None, "acc_pct_ours", lambda m: pct_value(m[3].acc)),
        C(None, "acc_sd_pct_ours", lambda m: pct_value(m[3].acc_sd)),
        C(None, "seeds_ours", lambda m: len(m[3].seeds)),
        C(None, "delta_acc_pp", lambda m: None if (d := delta(m)) is None else round(d, 4)),
        C("density % theirs", "density_pct_theirs", lambda m: m[2][1], fmt=num),
        C("density % ours", "density_pct_ours", lambda m: pct_value(m[3].density), show=lambda m: num(None if m[3].density is None else 100 * m[3].density)),
        C(None, "status_ours", lambda m: m[3].status),
        C("PE ρ=1 theirs", None, show=lambda m: num(reference.efficiency(m[0], m[1], 1))),
        C("PE ρ=1 ours", None, show=lambda m: num(scores.get((1, m[0], m[1])))),
        *(
            C(None, f"pe_rho{rho:g}_{side}", (lambda m, rho=rho, side=side: reference.efficiency(m[0], m[1], rho) if side == "theirs" else scores.get((rho, m[0], m[1]))))
            for rho in rhos
            for side in ("theirs", "ours")
        ),
    )  # fmt: skip
    rows = list(grid.matched(reference.acc_density))
    base = grid.baseline
    model, dataset = sweep.common("model"), sweep.common("dataset")
    notes = [
        f"Theirs: CNN5 on CIFAR-10, up to 200 epochs with early stopping, best over 6 learning "
        f"rates; baseline {reference.BASELINE_ACC}% (ours: "
        f"{pct(grid.baseline_acc) + '%' if base else 'no finished baseline'}"
        f"{f', mean of {n} seeds' if base and (n := len(grid.cells[(0.0, 32)].seeds)) > 1 else ''})."
        " Ours: mean ± sd over seeds where there are several.",
        f"{len(rows)} of the {len(reference.ACC_DENSITY) * len(reference.BITS)} Table I "
        "cells are in this sweep; PE is published for 8, 4 and 3 bits only (all rhos are in the "
        "CSV/JSON).",
    ]
    if (model, dataset) != (reference.MODEL, reference.DATASET):
        notes.append(
            f"This sweep trains {model} on {dataset}, not CNN5 on CIFAR-10: compare trends "
            "(where accuracy drops, how density falls with alpha), not values."
        )
    return Table.from_columns(
        "table_i_comparison",
        "Comparison with the grid study's Table I (theirs beside ours)",
        columns,
        rows,
        notes,
    )


def modulation_comparison(grid: Grid, sweep: Sweep) -> Table:
    """The modulation study's accuracy / sparsity / file table (AMC-1D) beside ours."""
    base_cell = grid.cell(0.0, 32)
    base_bytes = base_cell.pqz_bytes if base_cell is not None else None

    def delta(m: Any) -> float | None:
        return None if m[3].acc is None else 100 * m[3].acc - float(m[2]["accuracy"] or 0.0)

    def mb(m: Any) -> float | None:
        return m[3].pqz_bytes / 1e6 if m[3].pqz_bytes else None

    def smaller(m: Any) -> float | None:
        return base_bytes / m[3].pqz_bytes if m[3].pqz_bytes and base_bytes else None

    def sparsity(m: Any) -> float | None:
        return 100 * (1 - m[3].density) if m[3].density is not None else None

    C = Column
    columns = (
        *_compared(lambda theirs: theirs["accuracy"], delta),
        C(None, "acc_pct_ours", lambda m: 100 * m[3].acc if m[3].acc is not None else None),
        C(None, "acc_sd_pct_ours", lambda m: pct_value(m[3].acc_sd)),
        C(None, "seeds_ours", lambda m: len(m[3].seeds)),
        C(None, "delta_acc_pp", delta),
        C("sparsity % theirs", "sparsity_pct_theirs", lambda m: m[2]["sparsity"], fmt=num),
        C("sparsity % ours", "sparsity_pct_ours", sparsity, fmt=num),
        C("file theirs (Mb, as printed)", "file_mb_theirs_as_printed", lambda m: m[2]["file_mb"], fmt=num),
        C("file ours (.pqz MB)", "pqz_mb_ours", mb, fmt=lambda x: num(x, ".3f")),
        C("x smaller than our float32 .pqz", "x_smaller_than_float32_pqz_ours", smaller, fmt=lambda x: num(x, ".1f")),
        C(None, "status_ours", lambda m: m[3].status),
    )  # fmt: skip
    notes = [
        "Theirs: AMC-1D on 7 classes of RadioML 2018.01A (SNR -20..30 dB), SGD lr 0.05 momentum "
        "0.9, batch 64, 70/30 split; sizes as the study prints them ('Mb'; its float32 file is "
        "3.18). Ours: the sweep's data (see its dataset: the generated I/Q set differs from "
        "RadioML, see docs/results/modulation-cpu/README.md), best epoch by test accuracy; "
        "mean ± sd over seeds where there are several.",
        "Sparsity = 1 - density of the compressed weights at the best epoch; the study "
        "publishes none at alpha 0.",
    ]
    model, dataset = sweep.common("model"), sweep.common("dataset")
    if model != reference.MODULATION_MODEL or dataset not in reference.MODULATION_DATASETS:
        notes.append(f"This sweep trains {model} on {dataset}, not AMC-1D on I/Q frames.")
    return Table.from_columns(
        "modulation_comparison",
        "Comparison with the modulation study (theirs beside ours)",
        columns,
        grid.matched(reference.modulation_cell),
        notes,
    )
