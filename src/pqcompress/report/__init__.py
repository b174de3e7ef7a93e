"""Reports of a sweep: grid tables (Markdown/CSV/JSON), plots (PNG/SVG) and one index.html.

``build_report(store_path, out_dir, ReportOptions(...)) -> ReportResult``; docs/report.md.
"""

from pqcompress.report.build import ReportOptions, ReportResult, build_report
from pqcompress.report.errors import MissingDependencyError, ReportError

__all__ = [
    "MissingDependencyError",
    "ReportError",
    "ReportOptions",
    "ReportResult",
    "build_report",
]
