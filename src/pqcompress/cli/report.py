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
    from pqcompress.report.kinds import ReportRequest, build_any

    request = ReportRequest(
        sweep=args.sweep,
        search=args.search,
        bench=args.bench,
        layer=args.layer,
        rhos=tuple(args.rho),
        plots=not args.no_plots,
    )
    out = build_any(args.store, args.output, request)
    for note in out.notes:
        print(f"note: {note}")
    print(f"wrote {out.files[0]} ({out.summary})")
    return 0
