"""``pqcompress report``: tables, plots and a self-contained index.html from a results store."""

from __future__ import annotations

import argparse
from typing import Any

from pqcompress.cli.options import add_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="tables, plots and an HTML report of a results store",
        description="Read a results store (SQLite, written by `pqcompress sweep`) and write the "
        "grid study's tables (Markdown, CSV, JSON), plots (PNG, SVG) and one self-contained "
        "index.html into OUT_DIR (docs/report.md). A store of `pqcompress bench-serving` gets "
        "the serving report (unless --sweep is given), one of `pqcompress search` the search "
        "report; a `pqcompress distill` folder, Tables I-IV.",
    )
    p.add_argument(
        "store",
        metavar="RESULTS.db",
        help="a results store, or a `pqcompress distill` output folder (Tables I-IV)",
    )
    add_output(p, dest="output", required=True, metavar="OUT_DIR", help="report directory")
    p.add_argument("--sweep", default=None, help="sweep name (needed when the store holds several)")
    p.add_argument(
        "--search",
        default=None,
        metavar="NAME",
        help="report the search study NAME of the store (pqcompress search)",
    )
    p.add_argument(
        "--bench",
        default=None,
        metavar="NAME",
        help="report the serving bench NAME of the store (pqcompress bench-serving)",
    )
    p.add_argument(
        "--layer",
        default=None,
        help="tensor of the weight histogram, e.g. features.0.weight (default: the largest "
        "compressed tensor of the most compressed finished run)",
    )
    p.add_argument(
        "--rho",
        type=float,
        nargs="+",
        default=[1.0, 2.0, 3.0],
        help="rho values of the Efficiency Score (default: 1 2 3)",
    )
    p.add_argument("--no-plots", action="store_true", help="tables and HTML only (no matplotlib)")
    p.set_defaults(func=_report)


def _report(args: Any) -> int:
    from pqcompress.report.distillation import build_distillation_report, is_distillation_folder

    if is_distillation_folder(args.store):
        paths = build_distillation_report(args.store, args.output)
        print(f"wrote {paths[0]} (the distillation study's Tables I-IV, {len(paths) - 1} files)")
        return 0
    from pqcompress.report.serving import build_serving_report, is_serving_store

    if args.bench or (is_serving_store(args.store) and not args.sweep):
        paths = build_serving_report(
            args.store, args.output, bench=args.bench, plots=not args.no_plots
        )
        print(f"wrote {paths[0]} (the serving study's tables and plots, {len(paths) - 1} files)")
        return 0
    from pqcompress.report.search import build_search_report, is_search_store

    if args.search or is_search_store(args.store):
        paths = build_search_report(
            args.store, args.output, study=args.search, plots=not args.no_plots
        )
        print(f"wrote {paths[0]} (the search study's tables and plots, {len(paths) - 1} files)")
        return 0
    from pqcompress.report import ReportOptions, build_report

    options = ReportOptions(
        sweep=args.sweep, layer=args.layer, rhos=tuple(args.rho), plots=not args.no_plots
    )
    result = build_report(args.store, args.output, options, log=print)
    for note in result.skipped:
        print(f"note: {note}")
    print(
        f"wrote {result.index_html} ({len(result.tables)} tables, {len(result.plots)} plots, "
        f"{result.runs} runs of sweep '{result.sweep}')"
    )
    return 0
