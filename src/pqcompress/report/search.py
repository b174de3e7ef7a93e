"""The search study's report from a results store: hypervolume per algorithm (mean +- sd over
repeats, theirs beside ours), the 16 selection-metric pairs, overheads, and plots (Pareto
fronts, hypervolume vs evaluations, boxplots over repeats)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from pqcompress.atomic import write_text_atomic
from pqcompress.report.errors import choose
from pqcompress.report.plots import _figure, _save
from pqcompress.report.published import published
from pqcompress.report.table_format import Column, Table, mean_sd, num
from pqcompress.results.db import table_rows
from pqcompress.results.search import SearchStore
from pqcompress.search.pareto import Normaliser, feasible_front
from pqcompress.search.spec import SearchSpec

# theirs (report/published/search_vgg16.yaml, VGG16 on CIFAR-10): hypervolume mean, sd
_THEIRS = published("search_vgg16")
THEIRS_VGG16 = {str(r["algorithm"]): (r["mean"], r["sd"]) for r in _THEIRS["hypervolume"]}
PAIR_METRICS = tuple(str(m) for m in _THEIRS["pair_metrics"])
THEIR_PAIRS = {(str(r["selection"]), str(r["ranking"])): r["hypervolume"] for r in _THEIRS["pairs"]}


def is_search_store(path: str | Path) -> bool:
    """A store with search runs and no sweep runs (a store holding both reports its sweep
    unless --search is given)."""
    return table_rows(path, "search_runs") > 0 and table_rows(path, "runs") == 0


def _load(path: Path, study: str | None) -> tuple[str, list[dict], list[dict], dict, list[dict]]:
    """(study name, finished runs, iterations, study record, every evaluation) from one open store."""

    store = SearchStore(path, readonly=True)
    try:
        study = choose(store.studies(), study, what="search study", where=path, option="--search")
        runs = [
            dict(r)
            for r in store.db.execute(
                "SELECT * FROM search_runs WHERE study = ? ORDER BY algorithm, repeat", (study,)
            )
        ]
        its = store.iterations(study)
        meta = store.study(study) or {}
        return study, runs, its, meta, store.all_evaluations(study)
    finally:
        store.close()


def hypervolume_table(runs: list[dict], its: list[dict]) -> Table:
    by: dict[str, list[float]] = defaultdict(list)
    evals: dict[str, list[int]] = defaultdict(list)
    for r in runs:
        by[r["algorithm"]].append(r["hypervolume"])
        evals[r["algorithm"]].append(r["evaluations"])
    fit: dict[str, list[float]] = defaultdict(list)
    opt: dict[str, list[float]] = defaultdict(list)
    for i in its:
        if i["fit_s"] is not None:
            fit[i["algorithm"]].append(i["fit_s"])
            opt[i["algorithm"]].append(i["optimize_s"])
    order = sorted(by, key=lambda a: -statistics.fmean(by[a]))
    stats = {a: mean_sd(by[a]) for a in order}

    def spent(seconds: dict[str, list[float]]) -> Callable[[str], float | None]:
        return lambda a: statistics.fmean(seconds[a]) if seconds.get(a) else None

    def theirs(a: str) -> str:
        t = THEIRS_VGG16.get(a)
        return f"{t[0]:.2f} ± {t[1]:.2f}" if t else "-"

    C = Column
    columns = (
        C("algorithm", "algorithm", lambda a: a),
        C("repeats", "repeats", lambda a: len(by[a])),
        C("evaluations", None, show=lambda a: num(statistics.fmean(evals[a]), ".1f")),
        C("hypervolume", "hypervolume_mean", lambda a: stats[a][0], show=lambda a: f"{stats[a][0]:.4f} ± {num(stats[a][1], '.4f')}"),
        C(None, "hypervolume_sd", lambda a: stats[a][1]),
        C("theirs (VGG16)", "their_mean", lambda a: (THEIRS_VGG16.get(a) or (None,))[0], show=theirs),
        C("fit s/iter", "fit_s_per_iteration", spent(fit), fmt=num),
        C("optimise s/iter", "optimize_s_per_iteration", spent(opt), fmt=num),
    )  # fmt: skip
    return Table.from_columns(
        "search_hypervolume",
        "Hypervolume per algorithm (mean ± sd over repeats)",
        columns,
        order,
        (
            "ours: normalised objectives, reference point 1 in each (docs/search.md); theirs use "
            "another scale, so compare the order of the algorithms, not the values",
        ),
    )


def feasible_table(evals: list[dict]) -> Table:
    """Every evaluation that met the constraints, smallest first (the file's bytes, else the
    share of nonzero weights; then the most accurate):
    the settings a reader can take, which the hypervolume alone does not show (a feasible
    point on the accuracy floor adds no volume)."""
    rows = sorted(
        (e for e in evals if e["feasible"]),
        key=lambda e: (
            e["objectives"].get("size", e["objectives"].get("nonzero", 0.0)),
            -e["objectives"].get("accuracy", 0.0),
        ),
    )
    header = ("algorithm", "repeat", "setting", "accuracy %", "nonzero %", "bytes", "latency ms")
    body, records = [], []
    for e in rows:
        o = e["objectives"]
        setting = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in sorted(e["variables"].items()))  # fmt: skip
        body.append((
            e["algorithm"], str(e["repeat"]), setting, num(100 * o["accuracy"] if "accuracy" in o else None),
            num(100 * o["nonzero"] if "nonzero" in o else None, ".1f"),
            f"{o['size']:,.0f}" if "size" in o else "-",
            num(1000 * o["latency"] if "latency" in o else None, ".3f"),
        ))  # fmt: skip
        records.append({"algorithm": e["algorithm"], "repeat": e["repeat"],
                        **{f"var.{k}": v for k, v in sorted(e["variables"].items())}, **o})  # fmt: skip
    return Table.of(
        "search_feasible",
        f"Evaluations that met the constraints ({len(rows)} of {len(evals)}), smallest first",
        header,
        body,
        records,
        (
            "accuracy on the evaluation subset; bytes: the exported file; latency: the median "
            "of the spec's latency_repeats batch-1 runs (docs/search.md)",
        ),
        empty=("algorithm",),
    )


def pairs_table(runs: list[dict]) -> Table:
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in runs:
        a = r["algorithm"]
        if a.startswith("surrogate ") and "/" in a:
            o, c = a.split(" ", 1)[1].split("/", 1)
            by[(o, c)].append(r["hypervolume"])
    body, records = [], []
    for o in PAIR_METRICS:
        cells = [o]
        for c in PAIR_METRICS:
            vals = by.get((o, c))
            ours = f"{statistics.fmean(vals):.4f}" if vals else "-"
            cells.append(f"{ours} (theirs {THEIR_PAIRS[(o, c)]:.2f})")
            records.append(
                {
                    "objectives": o,
                    "constraints": c,
                    "ours": statistics.fmean(vals) if vals else None,
                    "theirs": THEIR_PAIRS[(o, c)],
                }
            )
        body.append(tuple(cells))
    return Table(
        "search_metric_pairs",
        "Surrogate selection metrics: objectives (rows) x constraint (columns), mean hypervolume",
        ("objectives \\ constraint", *PAIR_METRICS),
        tuple(body),
        ("objectives", "constraints", "ours", "theirs"),
        tuple(records),
        ("'-': the pair was not run in this study",),
    )


def _plots(
    runs: list[dict], its: list[dict], meta: dict, evals: list[dict], out: Path
) -> list[Path]:
    """Hypervolume vs evaluations, boxplots over repeats and the fronts of repeat 0 (PNG + SVG
    each, drawn like the grid report's plots: headless figures, no pyplot state)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return []

    written: list[Path] = []
    algos = sorted({r["algorithm"] for r in runs})
    # hypervolume vs evaluations (mean over repeats, step-wise)
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    for a in algos:
        curves = defaultdict(list)
        for i in its:
            if i["algorithm"] == a:
                curves[i["repeat"]].append((i["evaluations"], i["hypervolume"]))
        grid = sorted({e for c in curves.values() for e, _ in c})
        if not grid:
            continue
        means = []
        for g in grid:
            vals = [max([h for e, h in c if e <= g], default=0.0) for c in curves.values()]
            means.append(statistics.fmean(vals))
        ax.step(grid, means, where="post", label=a)
    ax.set_xlabel("real evaluations")
    ax.set_ylabel("hypervolume (mean over repeats)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    written += _save(fig, out, "search_hypervolume_curve")
    # boxplots over repeats
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    ax.boxplot([[r["hypervolume"] for r in runs if r["algorithm"] == a] for a in algos])
    ax.set_xticks(range(1, len(algos) + 1), algos, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("final hypervolume")
    ax.grid(alpha=0.3, axis="y")
    written += _save(fig, out, "search_hypervolume_box")
    # fronts of repeat 0
    ref = meta.get("reference", {})
    spec = SearchSpec.from_dict(meta.get("spec", {}))
    floor = spec.accuracy_floor(float(ref.get("accuracy", 0.0)))
    norm = Normaliser(tuple(spec.objectives), floor, ref)
    if tuple(spec.objectives[:2]) == ("accuracy", "nonzero"):
        fig = _figure(7, 4.5)
        ax = fig.add_subplot()
        for a in algos:
            rows = [e for e in evals if e["algorithm"] == a and e["repeat"] == 0]
            front, _ = feasible_front(rows, norm)
            pts = sorted((f["objectives"]["nonzero"], f["objectives"]["accuracy"]) for f in front)
            if pts:
                ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=a)
        ax.axhline(100 * floor, color="grey", ls="--", lw=1, label="accuracy floor")
        ax.set_xlabel("nonzero share of parameters")
        ax.set_ylabel("accuracy % (evaluation subset)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        written += _save(fig, out, "search_fronts")
    return written


def build_search_report(
    path: str | Path, out_dir: str | Path, *, study: str | None = None, plots: bool = True
) -> list[Path]:
    """Write the tables (.md/.csv/.json), plots and ``search_report.md`` into ``out_dir``."""
    path, out = Path(path), Path(out_dir)
    study, runs, its, meta, evals = _load(path, study)
    out.mkdir(parents=True, exist_ok=True)
    tables = [hypervolume_table(runs, its), pairs_table(runs), feasible_table(evals)]
    written: list[Path] = []
    for t in tables:
        written += t.write(out)
    figures = _plots(runs, its, meta, evals, out) if plots else []
    ref = meta.get("reference", {})
    head = (
        f"# Search study '{study}'\n\nUnmodified model: {100 * ref.get('accuracy', 0):.2f}% on "
        f"the evaluation subset. Spec: `{json.dumps(meta.get('spec', {}), sort_keys=True)}`\n\n"
    )
    pics = "".join(f"![{p.stem}]({p.name})\n\n" for p in figures if p.suffix == ".png")
    report = out / "search_report.md"
    write_text_atomic(report, head + "\n".join(t.to_markdown() for t in tables) + "\n" + pics)
    return [report, *written, *figures]
