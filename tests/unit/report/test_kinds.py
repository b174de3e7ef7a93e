"""The registry of report kinds: asked in order, the grid report last (it takes the rest)."""

from __future__ import annotations

import pytest

from pqcompress.report.errors import ReportError
from pqcompress.report.kinds import REPORT_KINDS, ReportRequest, register_report_kind


def test_kinds_are_asked_in_order_and_the_grid_takes_the_rest(tmp_path):
    assert list(REPORT_KINDS) == ["distillation", "serving", "search", "grid"]
    empty = tmp_path / "nothing.db"
    claims = {name: k.claims(empty, ReportRequest()) for name, k in REPORT_KINDS.items()}
    assert claims == {"distillation": False, "serving": False, "search": False, "grid": True}
    assert REPORT_KINDS["serving"].claims(empty, ReportRequest(bench="b1"))
    assert REPORT_KINDS["search"].claims(empty, ReportRequest(search="s1"))


def test_a_kind_is_registered_once():
    with pytest.raises(ReportError, match="registered twice"):
        register_report_kind(REPORT_KINDS["grid"])
