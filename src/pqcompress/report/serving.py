"""The serving study's report from a results store (``pqcompress bench-serving``): Tables V/VI
(p95 +- sd, MiB, mCores per variant and profile, ratios to the baseline, the studies' numbers
beside ours), the ready-time table, the microservice study's Tables II-IV when the store also
holds the variants' training sweep, timeline plots (users, p95, CPU, memory over time) and
bars per variant."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pqcompress.atomic import write_text_atomic
from pqcompress.loadtest.profiles import profile_from_dict
from pqcompress.report import plots
from pqcompress.report.errors import ReportError, choose
from pqcompress.report.published import published
from pqcompress.report.store import list_sweeps, read_sweep
from pqcompress.report.table_format import Table, mean_sd_or_none, num
from pqcompress.results.serving import ServingStore, has_serving_tables

# theirs (docs/method.md §6; report/published/serving_vgg16.yaml): per peak users,
# (bits, alpha) -> (p95 ms, p95 sd ms, memory MiB, CPU millicores)
_THEIRS = published("serving_vgg16")
THEIRS_SERVING: dict[int, dict[tuple[int, float], tuple[float, float, float, float]]] = {}
for _r in _THEIRS["serving"]:
    THEIRS_SERVING.setdefault(int(_r["users"]), {})[(int(_r["bits"]), float(_r["alpha"]))] = (
        _r["p95_ms"],
        _r["p95_sd_ms"],
        _r["memory_mib"],
        _r["cpu_millicores"],
    )
# (bits, alpha) -> (mean s, sd s) of a new replica's time to ready
THEIRS_READY: dict[tuple[int, float], tuple[float, float]] = {
    (int(r["bits"]), float(r["alpha"])): (r["mean_s"], r["sd_s"]) for r in _THEIRS["ready"]
}
# (bits, alpha) -> (accuracy %, sparsity % or None, file MB after Deflate): Tables II-IV
THEIRS_TRAINED: dict[tuple[int, float], tuple[float, float | None, float]] = {
    (int(r["bits"]), float(r["alpha"])): (r["accuracy"], r["sparsity"], r["file_mb_deflate"])
    for r in _THEIRS["trained"]
}


def is_serving_store(path: str | Path) -> bool:
    return has_serving_tables(path)


def _key(variant: dict[str, Any]) -> tuple[int, float] | None:
    bits, alpha = variant.get("bits"), variant.get("alpha")
    if bits is None or alpha is None:
        return None
    return int(bits), float(alpha)


def _peak(profile: dict[str, Any]) -> int | None:
    peak = profile.get("peak_users")
    return int(peak) if profile.get("kind") == "ramp" and peak in THEIRS_SERVING else None


def _ratio(base: float | None, value: float | None) -> str:
    if base is None or value is None or value == 0:
        return "-"
    return f"{base / value:.2f}x"


def _cell(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r["summary"][key] for r in runs if r["summary"].get(key) is not None]
    return statistics.fmean(values) if values else None


def _group(
    runs: list[dict[str, Any]],
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault((r["variant"], r["profile"]), []).append(r)
    return out


def _baseline(spec: dict[str, Any]) -> str:
    """The variant every ratio is to: the one marked ``baseline``, else the first."""
    variants = spec["variants"]
    return str(next((v for v in variants if v.get("baseline")), variants[0])["name"])


def _cells(
    spec: dict[str, Any], runs: list[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list, list, tuple | None]]:
    """(profile, variant, its runs, the baseline's runs, theirs) for every measured pair, in
    profile then variant order; theirs is the studies' (p95, sd, MiB, mCores) at the same
    peak users and (bits, alpha), when they have one."""
    grouped = _group(runs)
    base = _baseline(spec)
    for p in spec["profiles"]:
        peak = _peak(p)
        for v in spec["variants"]:
            rs = grouped.get((v["name"], p["name"]), [])
            if rs:
                theirs = THEIRS_SERVING.get(peak or -1, {}).get(_key(v) or (-1, -1.0))
                yield p, v, rs, grouped.get((base, p["name"]), []), theirs


def _peak_rps(profile: dict[str, Any]) -> float:
    return profile_from_dict({k: v for k, v in profile.items() if k != "name"}).peak_rps()


def latency_table(spec: dict[str, Any], runs: list[dict[str, Any]]) -> Table:
    """Table V: p95 +- sd (ms) per variant and profile, speed-up vs the baseline, theirs."""
    header = ("variant", "profile", "peak rps", "p95 ms", "vs base", "theirs p95 ms", "ok/s",
              "errors (shed)")  # fmt: skip
    body, records = [], []
    for p, v, rs, base_rs, theirs in _cells(spec, runs):
        value, spread = _cell(rs, "p95_ms"), _cell(rs, "p95_sd_ms")
        shed = sum(r["summary"]["errors"].get("shed_503", 0) for r in rs)
        errors = sum(r["summary"]["errors_total"] for r in rs)
        rate = _peak_rps(p)
        body.append((
            v["name"], p["name"], num(rate, ".1f"),
            f"{num(value, '.1f')} +- {num(spread, '.1f')}",
            _ratio(_cell(base_rs, "p95_ms"), value),
            f"{theirs[0]:.2f} +- {theirs[1]:.2f}" if theirs else "-",
            num(_cell(rs, "throughput_rps"), ".1f"), f"{errors} ({shed})",
        ))  # fmt: skip
        records.append({
            "variant": v["name"], "profile": p["name"], "peak_rps": rate, "p95_ms": value,
            "p95_sd_ms": spread, "theirs_p95_ms": theirs[0] if theirs else None,
            "theirs_p95_sd_ms": theirs[1] if theirs else None,
            "throughput_rps": _cell(rs, "throughput_rps"), "errors": errors, "shed": shed,
            "p50_ms": _cell(rs, "p50_ms"), "p99_ms": _cell(rs, "p99_ms"),
        })  # fmt: skip
    return Table.of(
        name="table_v_latency",
        title="Table V: p95 latency (ms, +- sd of the per-second p95) per variant and profile",
        header=header,
        body=body,
        records=records,
        notes=(
            f"vs base: the baseline variant's ({_baseline(spec)}) p95 divided by this one's "
            "(higher = faster).",
            "Theirs: the studies' p95 at the same peak users (a 2 vCPU MicroK8s VM, Flask); "
            "ours: open-model users whose per-user rate is scaled to this machine (see the "
            "bench spec).",
        ),
    )


def resources_table(spec: dict[str, Any], runs: list[dict[str, Any]]) -> Table:
    """Table VI: peak resident MiB and mean CPU millicores per variant and profile."""
    header = ("variant", "profile", "MiB", "vs base", "theirs MiB", "mCores", "vs base",
              "theirs mCores", "errors")  # fmt: skip
    body, records = [], []
    for p, v, rs, base_rs, theirs in _cells(spec, runs):
        mem, cpu = _cell(rs, "memory_mib"), _cell(rs, "cpu_millicores")
        errors = sum(r["summary"]["errors_total"] for r in rs)
        body.append((
            v["name"], p["name"], num(mem, ".1f"), _ratio(_cell(base_rs, "memory_mib"), mem),
            num(theirs[2] if theirs else None, ".0f"), num(cpu, ".0f"),
            _ratio(_cell(base_rs, "cpu_millicores"), cpu),
            num(theirs[3] if theirs else None, ".0f"), str(errors),
        ))  # fmt: skip
        records.append({
            "variant": v["name"], "profile": p["name"], "memory_mib": mem,
            "cpu_millicores": cpu, "theirs_memory_mib": theirs[2] if theirs else None,
            "theirs_cpu_millicores": theirs[3] if theirs else None, "errors": errors,
        })  # fmt: skip
    return Table.of(
        name="table_vi_resources",
        title="Table VI: memory (peak resident MiB) and CPU (mean millicores) per variant and "
        "profile, from Prometheus",
        header=header,
        body=body,
        records=records,
        notes=(
            f"vs base: the baseline variant ({_baseline(spec)}) divided by this one (higher = "
            "leaner).",
            "Ours: pqc_service_* of the service's whole process tree, scraped every second "
            "(docs/loadtest.md); theirs: the pod's figures on MicroK8s (docs/method.md §6, §8).",
        ),
    )


def service_table(spec: dict[str, Any], runs: list[dict[str, Any]]) -> Table | None:
    """Per variant, the service's own figures beside the open-model ones: the model's
    parameters and MACs (before -> after shrinking), the closed-loop batch-1 latency, the p95
    at the heaviest profile, and both memory peaks (under load, and lifetime with loading).
    None for a store written before bench-serving recorded them."""
    if not any("closed_loop_p50_ms" in r["summary"] for r in runs):
        return None
    heaviest = max(spec["profiles"], key=_peak_rps)["name"]
    base = _baseline(spec)
    header = ("variant", "params", "MACs (M)", ".pqz bytes", "closed-loop p50/p95 ms",
              f"p95 ms at {heaviest}", "vs base", "MiB under load", "MiB lifetime peak")  # fmt: skip
    body, records = [], []
    grouped = _group(runs)
    for v in spec["variants"]:
        rs = [r for r in runs if r["variant"] == v["name"]]
        if not rs:
            continue
        model = rs[0]["summary"].get("model") or {}
        before, after = model.get("macs_before_shrink"), model.get("macs_after_shrink")
        macs = f"{before / 1e6:.1f} -> {after / 1e6:.1f}" if before and after else "-"
        params = model.get("params")
        if model.get("params_before_shrink"):
            params_text = f"{model['params_before_shrink']:,} -> {params:,}"
        else:
            params_text = f"{params:,}" if params else "-"
        p50, p95 = _cell(rs, "closed_loop_p50_ms"), _cell(rs, "closed_loop_p95_ms")
        heavy = grouped.get((v["name"], heaviest), [])
        open_p95 = _cell(heavy, "p95_ms")
        base_p95 = _cell(grouped.get((base, heaviest), []), "p95_ms")
        loaded = max((r["summary"].get("memory_mib") or 0 for r in rs), default=0) or None
        lifetime = max((r["summary"].get("peak_memory_mib") or 0 for r in rs), default=0) or None
        file_bytes = rs[0]["summary"].get("file_bytes")
        body.append((
            v["name"], params_text, macs, f"{file_bytes:,}" if file_bytes else "-",
            f"{num(p50, '.2f')} / {num(p95, '.2f')}", num(open_p95, ".1f"),
            _ratio(base_p95, open_p95), num(loaded, ".0f"), num(lifetime, ".0f"),
        ))  # fmt: skip
        records.append({
            "variant": v["name"], "params": params,
            "params_before_shrink": model.get("params_before_shrink"),
            "macs_before_shrink": before, "macs_after_shrink": after, "file_bytes": file_bytes,
            "closed_loop_p50_ms": p50, "closed_loop_p95_ms": p95, "heaviest_profile": heaviest,
            "p95_ms": open_p95, "memory_mib": loaded, "peak_memory_mib": lifetime,
        })  # fmt: skip
    return Table.of(
        name="table_service",
        title="The service per variant: model size, closed-loop batch-1 latency, p95 under the "
        "heaviest profile, memory under load and lifetime peak",
        header=header,
        body=body,
        records=records,
        notes=(
            "Closed loop: 100 sequential batch-1 predictions after the warm-up, no queueing "
            "(the service's own cost). MiB under load: the peak resident memory Prometheus "
            "saw during the profiles; lifetime peak: VmHWM, loading included (what a "
            "container's memory limit must hold).",
            "MACs per image of the conv and linear layers, before -> after shrinking, for a "
            "file whose pruned channels were removed.",
        ),
    )


def ready_table(spec: dict[str, Any], ready: list[dict[str, Any]]) -> Table:
    """Start to first ``/readyz`` 200: mean +- sd over the repeats, RSS at ready, file MB."""
    variants = spec["variants"]
    base = _baseline(spec)
    by: dict[str, list[dict[str, Any]]] = {}
    for r in ready:
        by.setdefault(r["variant"], []).append(r)
    base_mean, _ = mean_sd_or_none([r["ready_s"] for r in by.get(base, [])])
    body, records = [], []
    for v in variants:
        rs = by.get(v["name"], [])
        if not rs:
            continue
        mean, sd = mean_sd_or_none([r["ready_s"] for r in rs])
        rss, _ = mean_sd_or_none([r["rss_ready_mib"] for r in rs if r["rss_ready_mib"] is not None])
        mb = (rs[0]["file_bytes"] or 0) / 1e6
        theirs = THEIRS_READY.get(_key(v) or (-1, -1.0))
        body.append((
            v["name"], f"{mb:.2f}", f"{num(mean, '.2f')} +- {num(sd, '.3f')}",
            _ratio(base_mean, mean), num(rss, ".0f"),
            f"{theirs[0]:.2f} +- {theirs[1]:.3f}" if theirs else "-", str(len(rs)),
        ))  # fmt: skip
        records.append({
            "variant": v["name"], "file_mb": mb, "ready_s": mean, "ready_sd_s": sd,
            "rss_ready_mib": rss, "theirs_ready_s": theirs[0] if theirs else None,
            "repeats": len(rs),
        })  # fmt: skip
    return Table.of(
        name="ready_time",
        title="Time from start to ready (/readyz 200), a new replica",
        header=("variant", "file MB", "ready s", "vs base", "RSS at ready MiB", "theirs s", "n"),
        body=body,
        records=records,
        notes=(
            "Ours: a local process started by bench-serving (Python start-up, imports, model "
            "decode, warm-up inference included); theirs: a new pod on MicroK8s.",
        ),
    )


def trained_table(store: Path, spec: dict[str, Any]) -> Table | None:
    """Tables II-IV (accuracy, sparsity, file MB per bits x alpha), when the store also holds
    the training sweeps of the variants (the finished runs of every sweep in it: the study's
    variants, and channel-pruned ones beside them)."""

    try:
        sweeps = [read_sweep(store, name) for name in list_sweeps(store)]
    except ReportError:  # a store with serving tables only
        return None
    runs = [run for sweep in sweeps for run in sweep.runs]
    body, records = [], []
    for run in sorted(runs, key=lambda r: (-r.bits, r.alpha, str(r.compression))):
        if not run.finished or run.headline_acc is None:
            continue
        comp = run.compression or {}
        form = comp.get("form", "-")
        pruned = "weights"
        if comp.get("granularity") == "channel":
            flops = comp.get("target_flops")
            pruned = f"channels, {flops:.0%} MACs" if flops else "channels"
        theirs = (
            THEIRS_TRAINED.get((run.bits, run.alpha))
            if pruned == "weights" and form == "exact"
            else None
        )
        sparsity = None if run.density_at_best is None else 100 * (1 - run.density_at_best)
        mb = None if run.pqz_bytes is None else run.pqz_bytes / 1e6
        body.append((
            str(run.bits), f"{run.alpha:g}", form, pruned, f"{100 * run.headline_acc:.2f}",
            num(sparsity, ".2f"), num(mb, ".2f"),
            f"{theirs[0]:.2f} / {num(theirs[1], '.2f')} / {theirs[2]:.2f}" if theirs else "-",
        ))  # fmt: skip
        records.append({
            "bits": run.bits, "alpha": run.alpha, "form": form, "pruned": pruned,
            "accuracy_pct": 100 * run.headline_acc, "sparsity_pct": sparsity, "file_mb": mb,
            "theirs_accuracy_pct": theirs[0] if theirs else None,
            "theirs_sparsity_pct": theirs[1] if theirs else None,
            "theirs_file_mb": theirs[2] if theirs else None, "run_id": run.run_id,
        })  # fmt: skip
    if not records:
        return None
    return Table.of(
        name="tables_ii_iv_trained",
        title="Tables II-IV: test accuracy, sparsity and file size of the variants "
        f"(sweeps {', '.join(s.name for s in sweeps)})",
        header=(
            "bits",
            "alpha",
            "form",
            "pruned",
            "acc %",
            "sparsity %",
            ".pqz MB",
            "theirs acc / sparsity / MB (Deflate)",
        ),
        body=body,
        records=records,
        notes=(
            "Best epoch chosen on validation accuracy; test accuracy on the 10,000 test "
            "images. Sparsity = share of compressed-layer weights that are zero (a channel "
            "point: before shrinking; its file holds the shrunk model). Pruned: single weights "
            "(alpha * std), or whole channels until the share of the dense MACs is kept.",
        ),
    )


def _plots(spec: dict[str, Any], runs: list[dict[str, Any]], out: Path) -> list[Path]:
    plots.require_matplotlib()
    files: list[Path] = []
    grouped = _group(runs)
    names = [v["name"] for v in spec["variants"]]
    with plots.style():
        for p in spec["profiles"]:
            fig = plots._figure(8.0, 9.0)
            axes = fig.subplots(4, 1, sharex=True)
            panels = (
                ("users", "users"),
                ("p95_ms", "p95 ms"),
                ("cpu_millicores", "CPU mCores"),
                ("memory_mib", "memory MiB"),
            )
            drawn = False
            for v in names:
                rs = grouped.get((v, p["name"]), [])
                if not rs:
                    continue
                hist = rs[0]["history"]
                t = [row["second"] for row in hist]
                for ax, (key, _label) in zip(axes, panels):
                    ys = [row.get(key) for row in hist]
                    ax.plot(
                        t, [float("nan") if y is None else y for y in ys], label=v, linewidth=1.2
                    )
                drawn = True
            if not drawn:
                continue
            for ax, (_key, label) in zip(axes, panels):
                ax.set_ylabel(label)
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=7, ncol=2)
            axes[-1].set_xlabel("seconds since the start of the profile")
            fig.suptitle(f"profile {p['name']}: users, p95, CPU and memory over time")
            files += plots._save(fig, out, f"timeline_{p['name']}")
        fig = plots._figure(10.0, 3.6)
        axes = fig.subplots(1, 3)
        width = 0.8 / max(len(spec["profiles"]), 1)
        for j, p in enumerate(spec["profiles"]):
            for ax, key in zip(axes, ("p95_ms", "memory_mib", "cpu_millicores")):
                ys = [_cell(grouped.get((v, p["name"]), []), key) for v in names]
                xs = [i + j * width for i in range(len(names))]
                ax.bar(xs, [float("nan") if y is None else y for y in ys], width, label=p["name"])
        for ax, title in zip(axes, ("p95 ms", "peak MiB", "mean mCores")):
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
            ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
            ax.set_title(title)
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=7)
        files += plots._save(fig, out, "bars_per_variant")
    return files


def build_serving_report(
    path: str | Path, out_dir: str | Path, *, bench: str | None = None, plots: bool = True
) -> list[Path]:
    """Write Tables V/VI, the ready-time table (and Tables II-IV when the store holds the
    training sweep), plots and ``serving_report.md`` into ``out_dir``."""

    path, out = Path(path), Path(out_dir)
    if not is_serving_store(path):
        raise ReportError(f"{path} holds no serving bench (pqcompress bench-serving)")
    with ServingStore(path, readonly=True) as store:
        bench = choose(store.benches(), bench, what="serving bench", where=path, option="--bench")
        meta = store.spec(bench)
        runs, ready = store.runs(bench), store.ready(bench)
    spec = meta["spec"]
    out.mkdir(parents=True, exist_ok=True)
    tables = [latency_table(spec, runs), resources_table(spec, runs), ready_table(spec, ready)]
    service = service_table(spec, runs)
    if service is not None:
        tables.append(service)
    trained = trained_table(path, spec)
    if trained is not None:
        tables.insert(0, trained)
    written: list[Path] = []
    for t in tables:
        written += t.write(out)
    figures = _plots(spec, runs, out) if plots and runs else []
    m = meta["machine"]
    head = (
        f"# Serving bench '{bench}'\n\nMachine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), "
        f"Python {m.get('python')}. Profiles: "
        + "; ".join(
            f"{p['name']} ({', '.join(f'{k}={v}' for k, v in p.items() if k != 'name')})"
            for p in spec["profiles"]
        )
        + ".\n\n"
    )
    pics = "".join(f"![{p.stem}]({p.name})\n\n" for p in figures if p.suffix == ".png")
    report = out / "serving_report.md"
    write_text_atomic(report, head + "\n".join(t.to_markdown() for t in tables) + "\n" + pics)
    return [report, *written, *figures]
