"""Entry point of the ``pqcompress`` command: parse, dispatch, turn user errors into one line."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import NoReturn

from pqcompress import __version__
from pqcompress.errors import PQCError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): work saved, one line
EXIT_TERMINATED = 143  # SIGTERM: handled as Ctrl-C (work saved, one line), then 128 + 15


_INVALID_CHOICE = re.compile(
    r"argument (?P<arg>[^:]+): invalid choice: '(?P<got>[^']*)' \(choose from (?P<choices>.*)\)"
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message, a suggestion for a mistyped choice
    and where to read more), not the whole usage text; ``--help`` still prints everything."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        found = _INVALID_CHOICE.search(message)
        if found:
            choices = [c.strip().strip("'") for c in found["choices"].split(",")]
            close = difflib.get_close_matches(found["got"], choices, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean '{close[0]}'?"
        self.exit(
            EXIT_USAGE,
            f"pqcompress: error: {message} (see '{self.prog} --help')\n",
        )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in ``--help`` (unless its text already names one), descriptions
    and example epilogs kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            not action.option_strings
            or "default" in text.lower()
            or action.default in (None, False, [], argparse.SUPPRESS)
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        ):
            return text
        return f"{text} (default: %(default)s)".strip()


def build_parser() -> argparse.ArgumentParser:
    from pqcompress.cli import (
        distill,
        evaluate,
        export,
        info,
        loadtest,
        posttrain,
        quickstart,
        report,
        search,
        serve,
        sweep,
        train,
    )
    from pqcompress.cli.examples import epilog

    parser = OneLineParser(
        prog="pqcompress",
        description="Compression-aware training (prune-then-quantize after every step) for PyTorch.",
        formatter_class=HelpFormatter,
        epilog="examples:\n  pqcompress quickstart\n  pqcompress COMMAND --help",
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
    report.register(sub)
    distill.register(sub)
    search.register(sub)
    loadtest.register(sub)
    loadtest.register_bench(sub)
    for name, command in sub.choices.items():  # one convention for every subcommand's help
        command.formatter_class = HelpFormatter
        command.epilog = command.epilog or epilog(name)
        for action in command._actions:  # an option without help text still shows its default
            if action.help is None and action.option_strings and action.default not in (
                None, False, [], argparse.SUPPRESS
            ):  # fmt: skip
                action.help = "(default: %(default)s)"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # e.g. to relaunch under torchrun
    with _sigterm_as_interrupt() as received:
        try:
            code = int(args.func(args) or 0)
        except PQCError as exc:
            print(f"pqcompress: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:  # a path that cannot be written or read: say which, no traceback
            where = f" '{exc.filename}'" if exc.filename else ""
            print(f"pqcompress: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"pqcompress: interrupted{' (SIGTERM)' if received else ''}", file=sys.stderr)
            code = EXIT_INTERRUPTED
    return EXIT_TERMINATED if received and code == EXIT_INTERRUPTED else code


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[list[int]]:
    """SIGTERM raises KeyboardInterrupt, so every command stops as on Ctrl-C (a training run
    saves its finished epochs and says so, a sweep marks its running points interrupted); the
    list holds the signal once received. Commands that handle SIGTERM themselves (``serve``
    drains) install their own handler over this one."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
