"""The one mean ± sd rule of the reports."""

from __future__ import annotations

import pytest

from pqcompress.report.table_format import mean_sd


def test_mean_sd_is_the_sample_sd_and_none_for_one_value():
    assert mean_sd([0.8, 0.82]) == pytest.approx((0.81, 0.0141421356))
    assert mean_sd([0.5]) == (0.5, None)
    with pytest.raises(ValueError, match="no values"):
        mean_sd([])


def test_a_report_written_over_an_earlier_one_on_a_full_disk_keeps_it_whole(tmp_path, monkeypatch):
    """``report -o`` over an earlier report: a write that fails leaves each earlier file whole
    (it used to leave accuracy_density.json cut at 4,096 bytes)."""
    import errno
    import os

    from pqcompress import atomic
    from pqcompress.errors import StorageError
    from pqcompress.report.table_format import Table

    rows = [{"a": i, "b": "x" * 100} for i in range(200)]
    body = tuple((str(r["a"]), r["b"]) for r in rows)
    table = Table("t", "T", ("a", "b"), body, ("a", "b"), tuple(rows))
    table.write(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fsync = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(StorageError):
        Table("t", "T", ("a",), (("1",),) * 3, ("a",), tuple(rows[:3])).write(tmp_path)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
