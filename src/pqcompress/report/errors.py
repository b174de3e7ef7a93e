"""The report's user error: a store, sweep or layer that cannot be reported on."""

from __future__ import annotations

from pqcompress.errors import PQCError


class ReportError(PQCError):
    """The results store is missing, empty or unreadable, or an option names nothing in it."""


def choose(names: list[str], wanted: str | None, *, what: str, where: object, option: str) -> str:
    """The one of ``names`` (a store's sweeps, studies or benches) a report is about: ``wanted``
    when given, else the only one; one ReportError when there is none, several, or ``wanted``
    is not among them."""
    if not names:
        raise ReportError(f"results store '{where}' holds no {what}; nothing to report")
    if wanted is None:
        if len(names) > 1:
            raise ReportError(
                f"results store '{where}' holds {len(names)} {what}s ({', '.join(names)}); "
                f"choose one with {option} NAME"
            )
        return names[0]
    if wanted not in names:
        raise ReportError(f"no {what} '{wanted}' in '{where}'; it holds: {', '.join(names)}")
    return wanted


class MissingDependencyError(ReportError):
    """An optional package the report needs (matplotlib) is not installed."""


class PlotSkipped(Exception):
    """A plot the store's data cannot support (no finished run, missing file); the report
    leaves it out and prints the message in its notes instead."""
