"""The report's tables: accuracy (density) grid, Efficiency Score, run list, Table I comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pqcompress.report import reference
from pqcompress.report.grid import Cell, Grid, Score, efficiency_scores
from pqcompress.report.settings import baseline, group_settings, settings_front
from pqcompress.report.store import Run, Sweep
from pqcompress.report.table_format import Table, num, pct, pct_value


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
    header = (
        "#",
        "run",
        "params",
        "status",
        "best epoch",
        "epochs",
        "selected on",
        "test acc %",
        "test acc % at best val",
        "test acc % last epoch",
        "train acc %",
        "density %",
        ".pqz bytes",
        "x smaller than float32",
        "wall s",
        "error",
    )
    body, records = [], []
    for r in sweep.runs:
        ratio = _ratio(r)
        error = (r.error or "").strip().splitlines()
        body.append(
            (
                str(r.point_index),
                r.run_id[:12],
                _params_text(r.params),
                r.status,
                num(r.best_epoch, "d") if r.best_epoch else "-",
                num(r.epochs_run, "d") if r.epochs_run is not None else "-",
                r.selection,
                pct(r.best_test_acc),
                pct(r.test_acc_at_best_val),
                pct(r.test_acc_last),
                pct(r.train_acc_at_best),
                pct(r.density_at_best),
                f"{r.pqz_bytes:,}" if r.pqz_bytes else "-",
                num(ratio, ".2f") if ratio else "-",
                num(r.wall_time_s, ".1f"),
                (error[0][:160] if error else ""),
            )
        )
        records.append(
            {
                "point_index": r.point_index,
                "run_id": r.run_id,
                "params": r.params,
                "alpha": r.alpha,
                "bits": r.bits,
                "lr": r.lr,
                "status": r.status,
                "best_epoch": r.best_epoch,
                "epochs_run": r.epochs_run,
                "selection": r.selection,
                "test_acc_pct": pct_value(r.best_test_acc),
                "test_acc_at_best_val_pct": pct_value(r.test_acc_at_best_val),
                "test_acc_last_pct": pct_value(r.test_acc_last),
                "headline_protocol": r.headline_protocol,
                "train_acc_pct": pct_value(r.train_acc_at_best),
                "density_pct": pct_value(r.density_at_best),
                "pqz_bytes": r.pqz_bytes,
                "float32_bytes": r.float32_bytes,
                "ratio_to_float32": ratio,
                "wall_time_s": r.wall_time_s,
                "run_dir": r.run_dir,
                "error": r.error,
            }
        )
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
    return Table(
        "runs", "All runs", header, tuple(body), tuple(records[0]), tuple(records), tuple(notes)
    )


def points_table(sweep: Sweep) -> Table:
    """One row per setting (runs that differ only by seed are one setting): accuracy mean ± sd
    over seeds, its difference to the float32 baseline, density, .pqz bytes and how many times
    smaller the file is than the float32 dense weights; the accuracy/size frontier marked."""
    settings = group_settings(sweep)
    base_setting = baseline(settings)
    base = base_setting.acc if base_setting is not None else None
    front = set(settings_front(settings))
    header = (
        "setting",
        "seeds",
        "test acc %",
        "vs float32 (points)",
        "density %",
        ".pqz bytes",
        "x smaller than float32 dense",
        "frontier",
    )
    body, records = [], []
    for i, st in enumerate(settings):
        runs, mean, sd = st.runs, st.acc, st.acc_sd
        label = ", ".join(f"{k}={v}" for k, v in st.first.setting) or "base"
        ratios = [x for x in (_ratio(r) for r in runs) if x]
        mean_size, mean_density = st.pqz_bytes, st.density
        mean_ratio = sum(ratios) / len(ratios) if ratios else None
        delta = 100 * (mean - base) if base is not None else None
        body.append(
            (
                label,
                str(len(runs)),
                f"{100 * mean:.2f}" + (f" ± {100 * sd:.2f}" if sd is not None else ""),
                f"{delta:+.2f}" if delta is not None else "-",
                pct(mean_density),
                f"{round(mean_size):,}" if mean_size else "-",
                num(mean_ratio, ".1f") if mean_ratio else "-",
                "yes" if i in front else "",
            )
        )
        records.append(
            {
                "setting": dict(st.first.setting),
                "params": st.first.params,
                "seeds": [r.seed for r in runs],
                "run_ids": [r.run_id for r in runs],
                "test_acc_pct_mean": 100 * mean,
                "test_acc_pct_sd": 100 * sd if sd is not None else None,
                "test_acc_pct_runs": [pct_value(r.headline_acc) for r in runs],
                "delta_vs_float32_points": delta,
                "density_pct_mean": pct_value(mean_density),
                "pqz_bytes_mean": mean_size,
                "pqz_bytes_runs": [r.pqz_bytes for r in runs],
                "ratio_to_float32_mean": mean_ratio,
                "frontier": i in front,
            }
        )
    notes = [
        "One row per setting; runs that differ only by seed are one setting (mean ± sample sd "
        "over seeds). Test accuracy at the best epoch; 'vs float32' is the difference of the "
        "means to the uncompressed baseline (alpha 0, 32 bits), in points.",
        "x smaller than float32 dense = 4 bytes x stored parameters / .pqz bytes. 'frontier': "
        "no other setting has a smaller file at the same or higher accuracy.",
    ]
    if not records:
        notes.append("No run has finished yet.")
        return Table("points", "Settings: accuracy and size", header, (), (), (), tuple(notes))
    return Table(
        "points",
        "Settings: accuracy and size",
        header,
        tuple(body),
        tuple(records[0]),
        tuple(records),
        tuple(notes),
    )


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
        ratios = [x for x in (_ratio(r) for r in st.runs) if x] if st is not None else []
        ratio = sum(ratios) / len(ratios) if ratios else None
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
        ),
        empty=("bits", "method"),
    )


def _mean_sd_text(st: Any) -> str:
    text = f"{100 * st.acc:.2f}"
    return text + (f" ± {100 * st.acc_sd:.2f}" if st.acc_sd is not None else "")


# the first columns of a table of a study's grid points beside ours
_COMPARED = ("alpha", "bits", "acc % theirs", "acc % ours", "Δ acc (pp)")


def table_i_comparison(grid: Grid, sweep: Sweep, rhos: Sequence[float]) -> Table:
    """The study's Table I (CNN5, CIFAR-10) beside ours for the grid points both have."""
    scores = {(s.rho, s.alpha, s.bits): s.value for s in efficiency_scores(grid, rhos)}
    header = (
        *_COMPARED,
        "density % theirs",
        "density % ours",
        "PE ρ=1 theirs",
        "PE ρ=1 ours",
    )
    body, records = [], []
    base = grid.baseline
    for alpha, bits, theirs, cell in grid.matched(reference.acc_density):
        ours_acc = 100 * cell.acc if cell.acc is not None else None
        ours_sd = 100 * cell.acc_sd if cell.acc_sd is not None else None
        ours_den = 100 * cell.density if cell.density is not None else None
        delta = None if ours_acc is None else ours_acc - theirs[0]
        rec: dict[str, Any] = {
            "alpha": alpha,
            "bits": bits,
            "acc_pct_theirs": theirs[0],
            "acc_pct_ours": None if ours_acc is None else round(ours_acc, 4),
            "acc_sd_pct_ours": None if ours_sd is None else round(ours_sd, 4),
            "seeds_ours": len(cell.seeds),
            "delta_acc_pp": None if delta is None else round(delta, 4),
            "density_pct_theirs": theirs[1],
            "density_pct_ours": None if ours_den is None else round(ours_den, 4),
            "status_ours": cell.status,
        }
        for rho in rhos:
            rec[f"pe_rho{rho:g}_theirs"] = reference.efficiency(alpha, bits, rho)
            rec[f"pe_rho{rho:g}_ours"] = scores.get((rho, alpha, bits))
        records.append(rec)
        body.append(
            (
                f"{alpha:g}",
                str(bits),
                num(theirs[0]),
                _acc_text(cell) if ours_acc is not None else cell.status,
                num(delta, "+.2f"),
                num(theirs[1]),
                num(ours_den),
                num(reference.efficiency(alpha, bits, 1)),
                num(scores.get((1, alpha, bits))),
            )
        )
    model, dataset = sweep.common("model"), sweep.common("dataset")
    notes = [
        f"Theirs: CNN5 on CIFAR-10, up to 200 epochs with early stopping, best over 6 learning "
        f"rates; baseline {reference.BASELINE_ACC}% (ours: "
        f"{pct(grid.baseline_acc) + '%' if base else 'no finished baseline'}"
        f"{f', mean of {n} seeds' if base and (n := len(grid.cells[(0.0, 32)].seeds)) > 1 else ''})."
        " Ours: mean ± sd over seeds where there are several.",
        f"{len(records)} of the {len(reference.ACC_DENSITY) * len(reference.BITS)} Table I "
        "cells are in this sweep; PE is published for 8, 4 and 3 bits only (all rhos are in the "
        "CSV/JSON).",
    ]
    if (model, dataset) != (reference.MODEL, reference.DATASET):
        notes.append(
            f"This sweep trains {model} on {dataset}, not CNN5 on CIFAR-10: compare trends "
            "(where accuracy drops, how density falls with alpha), not values."
        )
    columns = tuple(records[0]) if records else ("alpha", "bits")
    return Table(
        "table_i_comparison",
        "Comparison with the grid study's Table I (theirs beside ours)",
        header,
        tuple(body),
        columns,
        tuple(records),
        tuple(notes),
    )


def modulation_comparison(grid: Grid, sweep: Sweep) -> Table:
    """The modulation study's accuracy / sparsity / file table (AMC-1D) beside ours."""
    header = (
        *_COMPARED,
        "sparsity % theirs",
        "sparsity % ours",
        "file theirs (Mb, as printed)",
        "file ours (.pqz MB)",
        "x smaller than our float32 .pqz",
    )
    base_cell = grid.cell(0.0, 32)
    base_bytes = base_cell.pqz_bytes if base_cell is not None else None
    body, records = [], []
    for alpha, bits, theirs, cell in grid.matched(reference.modulation_cell):
        acc = 100 * cell.acc if cell.acc is not None else None
        sparsity = 100 * (1 - cell.density) if cell.density is not None else None
        pqz = cell.pqz_bytes
        size = pqz / 1e6 if pqz else None
        smaller = base_bytes / pqz if pqz and base_bytes else None
        delta = None if acc is None else acc - float(theirs["accuracy"] or 0.0)
        records.append(
            {
                "alpha": alpha,
                "bits": bits,
                "acc_pct_theirs": theirs["accuracy"],
                "acc_pct_ours": acc,
                "acc_sd_pct_ours": pct_value(cell.acc_sd),
                "seeds_ours": len(cell.seeds),
                "delta_acc_pp": delta,
                "sparsity_pct_theirs": theirs["sparsity"],
                "sparsity_pct_ours": sparsity,
                "file_mb_theirs_as_printed": theirs["file_mb"],
                "pqz_mb_ours": size,
                "x_smaller_than_float32_pqz_ours": smaller,
                "status_ours": cell.status,
            }
        )
        body.append(
            (
                f"{alpha:g}",
                str(bits),
                num(theirs["accuracy"]),
                _acc_text(cell) if acc is not None else cell.status,
                num(delta, "+.2f"),
                num(theirs["sparsity"]) if theirs["sparsity"] is not None else "-",
                num(sparsity),
                num(theirs["file_mb"]),
                num(size, ".3f"),
                num(smaller, ".1f"),
            )
        )
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
    columns = tuple(records[0]) if records else ("alpha", "bits")
    return Table(
        "modulation_comparison",
        "Comparison with the modulation study (theirs beside ours)",
        header,
        tuple(body),
        columns,
        tuple(records),
        tuple(notes),
    )
