"""Stratified picks, normalization statistics, and the atomic array cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pqcompress.data.cache import fingerprint, load_cached, save_cached
from pqcompress.data.normalize import Normalization
from pqcompress.data.splits import allocate, fraction_count, stratified_pick


def test_allocate_is_exact_and_proportional() -> None:
    counts = np.array([50, 30, 20, 1])
    for total in (0, 1, 7, 33, 100, 101, 500):
        quota = allocate(counts, total)
        assert quota.sum() == min(total, counts.sum())
        assert (quota <= counts).all()
    assert allocate(counts, 10).tolist() == [5, 3, 2, 0]


def test_stratified_pick() -> None:
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    picked, rest = stratified_pick(labels, 25, seed=0)
    assert len(picked) == 25 and len(rest) == 75
    assert not set(picked) & set(rest) and set(picked) | set(rest) == set(range(100))
    assert np.bincount(labels[picked]).tolist() == [10, 8, 5, 2]
    assert np.array_equal(stratified_pick(labels, 25, seed=0)[0], picked)
    assert not np.array_equal(stratified_pick(labels, 25, seed=1)[0], picked)
    assert fraction_count(100, 0.1) == 10 and fraction_count(5, 0.01) == 1
    assert fraction_count(1, 0.5) == 0 and fraction_count(10, 0.0) == 0


def test_normalization_fit_from_histograms_matches_float_math() -> None:
    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    norm = Normalization.fit(x)
    xf = x.double() / 255
    assert np.allclose(norm.mean, xf.mean(dim=(0, 2, 3)).tolist(), atol=1e-9)
    assert np.allclose(norm.std, xf.std(dim=(0, 2, 3), unbiased=False).tolist(), atol=1e-9)
    scale, shift = norm.scale_shift(4)
    out = x.float() * scale + shift
    assert abs(float(out.mean())) < 1e-4
    assert Normalization.from_dict(norm.to_dict()).pixel_scale == 255.0


def test_cache_round_trip_is_atomic_and_replaces_stale_entries(isolated_env: Path) -> None:
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.arange(3)}
    folder = save_cached("toy", "key1", arrays, {"source": "/data/a"})
    assert folder is not None and folder.parent == isolated_env / "toy"
    loaded, meta = load_cached("toy", "key1")
    assert np.array_equal(loaded["x"], arrays["x"]) and meta["source"] == "/data/a"
    assert [p.name for p in (isolated_env / "toy").iterdir()] == ["key1"]  # no temp leftovers
    save_cached("toy", "key2", arrays, {"source": "/data/a"})  # same source, new content
    assert [p.name for p in (isolated_env / "toy").iterdir()] == ["key2"]
    assert load_cached("toy", "key1") is None


def test_damaged_cache_entry_reads_as_a_miss_and_is_replaced(isolated_env: Path) -> None:
    folder = save_cached("toy", "k", {"x": np.zeros(3)}, {"source": "s"})
    (folder / "x.npy").write_bytes(b"garbage")
    assert load_cached("toy", "k") is None
    save_cached("toy", "k", {"x": np.ones(3)}, {"source": "s"})
    assert load_cached("toy", "k")[0]["x"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in (isolated_env / "toy").iterdir()] == ["k"]


def test_unwritable_cache_warns_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PQCOMPRESS_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not write the dataset cache"):
        assert save_cached("toy", "k", {"x": np.zeros(3)}, {"source": "s"}) is None


def test_fingerprint_follows_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    first = fingerprint([f])
    assert fingerprint([f]) == first and fingerprint([f], "opt") != first
    os.utime(f, ns=(1, 1))
    assert fingerprint([f]) != first
