"""``pqcompress search``: surrogate-assisted constrained multi-objective search of settings."""

from __future__ import annotations

import argparse
from typing import Any

from pqcompress.cli.options import add_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search compression settings (surrogate-assisted C-TAEA and baselines)",
        description="Run every algorithm and repeat of SPEC.yaml on a trained model; every real "
        "evaluation is a row of the results store (rerun to resume). docs/search.md.",
    )
    p.add_argument("spec", metavar="SPEC.yaml")
    p.add_argument("--store", required=True, metavar="RESULTS.db")
    p.add_argument("--executor", choices=("local", "inline", "ray"), default="inline")
    p.add_argument("--ray-address", default=None, metavar="A", help="join this Ray cluster")
    p.add_argument("--workers", type=int, default=1, help="parallel evaluations")
    add_output(p, metavar="DIR", help="write DIR/summary.json")
    p.set_defaults(func=_search)


def _search(args: Any) -> int:
    from pqcompress.errors import ConfigError
    from pqcompress.search import SearchSpec, run_search

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give 1 or more")
    spec = SearchSpec.from_yaml(args.spec)
    entries = run_search(
        spec,
        args.store,
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        out=args.out,
        log=print,
    )
    by_algo: dict[str, list[float]] = {}
    for e in entries:
        by_algo.setdefault(e["algorithm"], []).append(e["hypervolume"])
    for algo, hvs in by_algo.items():
        mean = sum(hvs) / len(hvs)
        print(f"{algo:<28} hypervolume {mean:.4f} (mean of {len(hvs)})")
    if args.out:
        print(f"wrote {args.out}/summary.json")
    return 0
