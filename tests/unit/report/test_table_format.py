"""The one mean ± sd rule of the reports, and tables built from one list of columns."""

from __future__ import annotations

import pytest

from pqcompress.report.table_format import Column, Table, mean_sd, num


def test_mean_sd_is_the_sample_sd_and_none_for_one_value():
    assert mean_sd([0.8, 0.82]) == pytest.approx((0.81, 0.0141421356))
    assert mean_sd([0.5]) == (0.5, None)
    with pytest.raises(ValueError, match="no values"):
        mean_sd([])


def test_a_table_from_columns_shows_and_records_each_value_from_one_definition(tmp_path):
    """A column with a header and a key gives a cell and a record value; one without a header
    is in the CSV/JSON only, one without a key on display only; no rows keep every column."""
    columns = (
        Column("name", "name", lambda r: r["n"]),
        Column("acc %", "acc_pct", lambda r: 100 * r["acc"], fmt=lambda x: num(x, ".1f")),
        Column(None, "run_id", lambda r: r["id"]),
        Column("vs base", None, show=lambda r: f"{r['acc'] / 0.5:.2f}x"),
    )
    rows = [{"n": "a", "acc": 0.5, "id": "r1"}, {"n": "b", "acc": 0.75, "id": "r2"}]
    table = Table.from_columns("t", "T", columns, rows, ("a note",))
    assert table.header == ("name", "acc %", "vs base")
    assert table.body == (("a", "50.0", "1.00x"), ("b", "75.0", "1.50x"))
    assert table.columns == ("name", "acc_pct", "run_id")
    assert table.records[1] == {"name": "b", "acc_pct": 75.0, "run_id": "r2"}
    table.write(tmp_path)
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        "name,acc_pct,run_id",
        "a,50.0,r1",
        "b,75.0,r2",
    ]
    empty = Table.from_columns("e", "E", columns, [])
    assert empty.body == () and empty.columns == ("name", "acc_pct", "run_id")
    assert "(no rows)" in empty.to_markdown()


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
