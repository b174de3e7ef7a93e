"""Atomic writes: whole or as before, a full disk is one StorageError line, any valid name fits."""

from __future__ import annotations

import errno
import os

import pytest

from pqcompress import atomic
from pqcompress.errors import StorageError


def _full_disk(monkeypatch, after: int = 10) -> None:
    """The next write through ``atomic_write`` gets ``after`` bytes in, then ENOSPC."""

    def write(fh):
        fh.write(b"x" * after)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real = atomic.atomic_write
    monkeypatch.setattr(atomic, "atomic_write", lambda path, _w: real(path, write))


def test_a_full_disk_keeps_the_old_file_and_says_so_in_one_line(tmp_path):
    path = tmp_path / "result.json"
    atomic.write_text_atomic(path, "old\n")

    def write(fh):
        fh.write(b"new and half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(StorageError) as info:
        atomic.atomic_write(path, write)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "disk is full" in message and "kept as it was" in message
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left


@pytest.mark.parametrize("length", [1, 200, 250, 251, 255])
def test_any_valid_name_gets_a_temp_file_that_fits(tmp_path, length):
    name = "a" * (length - 1) + "é" if length > 1 else "b"
    name = name.encode()[:255].decode("utf-8", "ignore")
    path = tmp_path / name
    assert len(atomic.temp_path(path).name.encode()) <= 255
    atomic.write_text_atomic(path, "x")
    assert path.read_text() == "x" and len(list(tmp_path.iterdir())) == 1


def test_an_append_to_a_full_disk_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    atomic.append_line_synced(path, "{}")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(StorageError, match="disk is full"):
        atomic.append_line_synced(path, "{}")
