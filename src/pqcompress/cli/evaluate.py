"""``pqcompress evaluate``: a .pqz or .onnx model on a dataset split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pqcompress.atomic import write_text_atomic
from pqcompress.cli.options import add_factory


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy, precision, recall, F1 and confusion matrix of a .pqz or .onnx model",
        description="Evaluate MODEL (.pqz, or .onnx through ONNX Runtime) on a dataset split.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--dataset", required=True, help="registered dataset name (pqcompress datasets)")
    p.add_argument("--data-root", default=None, help="where the dataset's files are")
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument("--json", dest="json_path", default=None, help="also write the report here")
    add_factory(p)
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from pqcompress.export.evaluate import evaluate_path

    report = evaluate_path(
        args.model,
        args.dataset,
        split=args.split,
        root=args.data_root,
        batch_size=args.batch_size,
        limit=args.limit,
        model=args.factory,
    )
    _print_report(report)
    if args.json_path:
        write_text_atomic(Path(args.json_path), json.dumps(report, indent=2) + "\n")
    return 0


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    from pqcompress.cli.console import make_console

    console = make_console()
    console.print(
        f"{report['model']} on {report['dataset']}/{report['split']} ({report['n']:,} samples): "
        f"accuracy {100 * report['accuracy']:.2f}%, macro F1 {100 * report['macro_f1']:.2f}%, "
        f"loss {report['loss']:.4f}; load {report['load_s'] * 1e3:.1f} ms, "
        f"evaluation {report['eval_s']:.2f} s"
    )
    names = report.get("class_names") or [str(i) for i in range(len(report["precision"]))]
    table = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(names):
        table.add_row(
            str(name),
            f"{100 * report['precision'][i]:.2f}%",
            f"{100 * report['recall'][i]:.2f}%",
            f"{100 * report['f1'][i]:.2f}%",
            str(report["support"][i]),
        )
    table.add_row(
        "macro",
        f"{100 * report['macro_precision']:.2f}%",
        f"{100 * report['macro_recall']:.2f}%",
        f"{100 * report['macro_f1']:.2f}%",
        str(sum(report["support"])),
    )
    console.print(table)
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for name in names:
        cm.add_column(str(name), justify="right")
    for name, row in zip(names, report["confusion_matrix"]):
        cm.add_row(str(name), *[str(v) for v in row])
    console.print(cm)
