"""``pqcompress models`` / ``pqcompress datasets``: list what the registries accept."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered model names")
    p.set_defaults(func=_models)
    p = sub.add_parser("datasets", help="list registered dataset names")
    p.set_defaults(func=_datasets)


def _models(args: argparse.Namespace) -> int:
    from pqcompress.models import available_models

    print("\n".join(available_models()))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from pqcompress.data import available_datasets

    print("\n".join(available_datasets()))
    return 0
