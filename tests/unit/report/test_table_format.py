"""The one mean ± sd rule of the reports."""

from __future__ import annotations

import pytest

from pqcompress.report.table_format import mean_sd


def test_mean_sd_is_the_sample_sd_and_none_for_one_value():
    assert mean_sd([0.8, 0.82]) == pytest.approx((0.81, 0.0141421356))
    assert mean_sd([0.5]) == (0.5, None)
    with pytest.raises(ValueError, match="no values"):
        mean_sd([])
