"""``pqcompress models`` / ``datasets``: what the registries accept; ``example-image``: a real
image to send to the service."""

from __future__ import annotations

import argparse
from pathlib import Path

from pqcompress.cli.options import add_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list registered models: input shape, parameters",
        description="Each registered model with the input shape it was designed for and its "
        "parameter count when built for 10 classes (any num_classes and input shape the model "
        "accepts can be asked for).",
    )
    p.set_defaults(func=_models)
    p = sub.add_parser(
        "datasets",
        help="list registered dataset names (docs/data.md describes each)",
    )
    p.set_defaults(func=_datasets)
    p = sub.add_parser(
        "example-image",
        help="write one test image of a dataset as a PNG (to send to `pqcompress serve`)",
        description="Write test image INDEX of DATASET (default: digits, bundled with "
        "scikit-learn) as a PNG, as the service's preprocessing expects it, and print its "
        "label.",
    )
    add_output(p, type=Path, required=True, metavar="FILE.png", help="the PNG file to write")
    p.add_argument("--dataset", default="digits", help="a registered image dataset")
    p.add_argument("--data-root", default=None, help="where the dataset's files are")
    p.add_argument("--index", type=int, default=0, help="which test image")
    p.set_defaults(func=_example_image)


def _models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from pqcompress.cli.console import make_console
    from pqcompress.errors import PQCError
    from pqcompress.models import available_models, build_model
    from pqcompress.models.registry import default_input_shape

    table = Table(title="registered models (pqcompress train --model NAME)")
    for col in ("model", "input shape", "parameters (10 classes)"):
        table.add_column(col, justify="right" if col.startswith("param") else "left")
    for name in available_models():
        shape = default_input_shape(name)
        try:
            model = build_model(name, num_classes=10, input_shape=shape)
            params = f"{sum(p.numel() for p in model.parameters()):,}"
        except PQCError as exc:  # an optional package (torchvision) is missing
            params = f"- ({str(exc).split(';')[0][:60]})"
        table.add_row(name, "x".join(map(str, shape)), params)
    make_console().print(table)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from pqcompress.data import available_datasets

    print("\n".join(available_datasets()))
    return 0


def _example_image(args: argparse.Namespace) -> int:
    from pqcompress.data.samples import write_example_image

    label = write_example_image(args.out, args.dataset, index=args.index, root=args.data_root)
    print(f"wrote {args.out}: test image {args.index} of {args.dataset}, label {label}")
    return 0
