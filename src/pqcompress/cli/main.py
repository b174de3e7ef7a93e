"""Entry point of the ``pqcompress`` command: parse, dispatch, turn user errors into one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pqcompress import __version__
from pqcompress.errors import PQCError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from pqcompress.cli import (
        evaluate,
        export,
        info,
        posttrain,
        quickstart,
        reporting,
        serve,
        sweep,
        train,
    )

    parser = argparse.ArgumentParser(
        prog="pqcompress",
        description="Compression-aware training (prune-then-quantize after every step) for PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"pqcompress {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train.register(sub)
    quickstart.register(sub)
    info.register(sub)
    export.register(sub)
    evaluate.register(sub)
    posttrain.register(sub)
    sweep.register(sub)
    serve.register(sub)
    reporting.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PQCError as exc:
        print(f"pqcompress: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pqcompress: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
