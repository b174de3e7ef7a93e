"""``pqcompress distill``: the distillation study (teachers -> student -> prune -> quantize)."""

from __future__ import annotations

import argparse
from typing import Any

from pqcompress.cli.options import add_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="train teachers and a distilled student, prune and quantize it (the chest X-ray study)",
        description="Run the distillation recipe into OUT_DIR: teachers (trained here or loaded), "
        "the student alone, the distilled student, distilled + pruned (threshold std / a), "
        "each post-training quantization, and distillation under P->Q (compression:). "
        "Rerunning with the same OUT_DIR continues an interrupted run. Writes "
        "OUT_DIR/summary.json (docs/distillation.md).",
    )
    p.add_argument("recipe", metavar="RECIPE.yaml")
    add_output(p, required=True, metavar="DIR", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_distill)


def _distill(args: Any) -> int:
    from pqcompress.studies.distill_recipe import DistillRecipe
    from pqcompress.studies.distillation import run_distillation

    recipe = DistillRecipe.from_yaml(args.recipe)
    rows = run_distillation(recipe, args.out, progress=not args.no_progress, log=print)
    width = max(len(k) for k in rows)
    print(f"{'model':<{width}}  accuracy      f1        bytes   vs teacher")
    for key, row in rows.items():
        if "skipped" in row:
            print(f"{key:<{width}}  skipped: {row['skipped']}")
            continue
        teacherish = key.startswith("teacher") or row.get("role") == "teacher member"
        ratio = None if teacherish else row.get("ratio_to_teacher")
        print(
            f"{key:<{width}}  {100 * row['accuracy']:7.2f}%  {row['f1']:.3f}  "
            f"{row['bytes'] or 0:>11,}  {f'{ratio:,.0f}x smaller' if ratio and ratio > 1 else ''}"
        )
    print(f"wrote {args.out}/summary.json")
    return 0
