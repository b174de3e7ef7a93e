"""run_search: every algorithm x repeat of a spec, recorded in the results store, summarised."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pqcompress.atomic import write_json_atomic
from pqcompress.errors import ConfigError
from pqcompress.execute import ExecutorError, make_executor
from pqcompress.results.search import SearchStore
from pqcompress.search.evaluate import REFERENCE, EvalSettings, data_config_for, evaluation_job
from pqcompress.search.loop import RunContext, run_algorithm
from pqcompress.search.pareto import Normaliser, feasible_front
from pqcompress.search.space import Space, custom_space, posttrain_space
from pqcompress.search.spec import SearchSpec

Log = Callable[[str], None]


def build_space(spec: SearchSpec) -> Space:
    if isinstance(spec.space, str):
        if spec.space == "pq":
            from pqcompress.search.pq_evaluate import pq_space

            return pq_space(spec.pq)
        return posttrain_space()
    return custom_space("custom", spec.space)


def eval_settings(spec: SearchSpec) -> EvalSettings:
    data, seed = data_config_for(spec.model, spec.data)
    return EvalSettings(
        model=spec.model,
        dataset=spec.dataset,
        data=data,
        split=spec.split,
        subset=spec.subset,
        seed=seed,
        objectives=tuple(spec.objectives),
        latency_repeats=spec.latency_repeats,
        space="pq" if spec.space == "pq" else "posttrain",
        fixed={**dict(spec.fixed), **({"pq": spec.pq} if spec.space == "pq" else {})},
        factory=spec.factory,
    )


def _study_spec(spec: SearchSpec) -> dict[str, Any]:
    """What must not change between a study's runs (algorithms and repeats may grow)."""
    d = spec.to_dict()
    for k in ("algorithms", "algorithm", "repeats", "name"):
        d.pop(k, None)
    return json.loads(json.dumps(d))


def run_search(
    spec: SearchSpec,
    store: str | Path,
    *,
    executor: str = "inline",
    workers: int = 1,
    ray_address: str | None = None,
    out: str | Path | None = None,
    log: Log | None = None,
    evaluator: Any = None,
) -> list[dict[str, Any]]:
    """Run (or resume) every algorithm and repeat of ``spec``; return the summary entries
    (one per algorithm and repeat) and write them to ``out/summary.json`` when given."""
    say: Log = log or (lambda _m: None)
    study = spec.name or "search"
    space = build_space(spec)
    db = SearchStore(store)
    if evaluator is not None and executor != "inline":
        raise ExecutorError(f"a ready evaluator runs inline only, not on --executor {executor}")
    ex = make_executor(
        executor,
        evaluation_job(eval_settings(spec), evaluator),
        workers=workers,
        ray_address=ray_address,
    )
    try:
        saved = db.study(study)
        if saved is None:
            reference = ex.map([REFERENCE])[0]
            db.add_study(study, _study_spec(spec), reference)
        else:
            if saved["spec"] != _study_spec(spec):
                diff = sorted(
                    k for k in saved["spec"] if saved["spec"].get(k) != _study_spec(spec).get(k)
                )
                raise ConfigError(
                    f"the store already holds study '{study}' with other settings ({', '.join(diff)}); "
                    "name the new study differently (name: in the spec)"
                )
            reference = saved["reference"]
        floor = spec.accuracy_floor(reference["accuracy"])
        norm = Normaliser(tuple(spec.objectives), floor, reference)
        say(
            f"study {study}: unmodified model {100 * reference['accuracy']:.2f}% on "
            f"{spec.split} subset; accuracy floor {100 * floor:.2f}%"
        )
        entries = []
        for algo in spec.runs:
            label = algo.name(spec.surrogate, spec.budget)
            for repeat in range(spec.repeats):
                t0 = time.perf_counter()
                ctx = RunContext(study, label, repeat, space, norm, db, ex, spec.budget)
                done = db.finished(study, label, repeat)
                if done is not None:  # finished earlier: its rows are the result
                    ctx.rows = dict(ctx.stored)
                    ctx.replayed = len(ctx.rows)
                else:
                    run_algorithm(ctx, spec, algo, spec.seed + 1000 * repeat)
                entry = summary_entry(ctx, reference, floor)
                entry["wall_s"] = done["wall_s"] if done else time.perf_counter() - t0
                if done is None:
                    db.finish(
                        study,
                        label,
                        repeat,
                        evaluations=entry["evaluations"],
                        hypervolume=entry["hypervolume"],
                        wall_s=entry["wall_s"],
                    )
                entries.append(entry)
                say(
                    f"{label} repeat {repeat}: {entry['evaluations']} evaluations "
                    f"({ctx.replayed} from the store), hypervolume {entry['hypervolume']:.4f}, "
                    f"{len(entry['front'])} on the front"
                )
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            write_json_atomic(Path(out) / "summary.json", entries)
        return entries
    finally:
        ex.close()
        db.close()


def summary_entry(ctx: RunContext, reference: dict[str, Any], floor: float) -> dict[str, Any]:
    front, hv = feasible_front(list(ctx.rows.values()), ctx.norm)
    iterations = [
        i
        for i in ctx.store.iterations(ctx.study)
        if i["algorithm"] == ctx.algorithm and i["repeat"] == ctx.repeat
    ]
    fit = [i["fit_s"] for i in iterations if i["fit_s"] is not None]
    opt = [i["optimize_s"] for i in iterations if i["optimize_s"] is not None]
    return {
        "algorithm": ctx.algorithm,
        "repeat": ctx.repeat,
        "evaluations": ctx.evaluations,
        "hypervolume": hv,
        "reference_point": ctx.norm.reference_point,
        "normalisation": {
            "objectives": list(ctx.norm.objectives),
            "accuracy_floor": floor,
            "reference": reference,
        },
        "front": [
            {
                "variables": r["variables"],
                "objectives": r["objectives"],
                "constraints": r["constraints"],
            }
            for r in sorted(front, key=lambda r: -r["objectives"]["accuracy"])
        ],
        "overhead_s_per_iteration": {
            "fit": sum(fit) / len(fit) if fit else None,
            "optimize": sum(opt) / len(opt) if opt else None,
            "iterations": len(fit),
        },
    }
