"""The report's user error: a store, sweep or layer that cannot be reported on."""

from __future__ import annotations

from pqcompress.errors import PQCError


class ReportError(PQCError):
    """The results store is missing, empty or unreadable, or an option names nothing in it."""


class MissingDependencyError(ReportError):
    """An optional package the report needs (matplotlib) is not installed."""


class PlotSkipped(Exception):
    """A plot the store's data cannot support (no finished run, missing file); the report
    leaves it out and prints the message in its notes instead."""
