"""Fixtures for the data tests: an isolated cache, and writers of tiny fake dataset sources."""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pqcompress.data.cifar10 import CIFAR10_CLASSES


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder and no $PQCOMPRESS_DATA_DIR."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PQCOMPRESS_CACHE", str(cache))
    monkeypatch.delenv("PQCOMPRESS_DATA_DIR", raising=False)
    return cache


@pytest.fixture
def cifar_batches() -> Callable[..., Path]:
    """Write ``data_batch_1..n_batches`` + ``test_batch`` (``per_batch`` images each) to a folder."""

    def write(folder: Path, *, n_batches: int = 2, per_batch: int = 10, protocol: int = 2) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"data_batch_{i}" for i in range(1, n_batches + 1)] + ["test_batch"]
        for i, name in enumerate(names):
            batch = {
                b"batch_label": name.encode(),
                b"labels": [int(v) for v in np.arange(per_batch) % 10],
                b"data": np.random.default_rng(i).integers(
                    0, 256, (per_batch, 3072), dtype=np.uint8
                ),
                b"filenames": [f"{name}_{j}.png".encode() for j in range(per_batch)],
            }
            (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        return folder

    return write


@pytest.fixture
def image_tree() -> Callable[..., Path]:
    """Write ``<root>/<split>/<class>/<i>.<ext>`` images (RGB noise, or the given mode/size)."""

    def write(
        root: Path,
        *,
        splits: Sequence[str] = ("train", "test"),
        classes: Sequence[str] = CIFAR10_CLASSES,
        per_class: int = 2,
        ext: str = "png",
        size: tuple[int, int] = (32, 32),
        mode: str = "RGB",
    ) -> Path:
        rng = np.random.default_rng(0)
        for split in splits:
            for c in classes:
                folder = root / split / c
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    shape = (size[1], size[0]) + ((len(mode),) if len(mode) > 1 else ())
                    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{i:04d}.{ext}")
        return root

    return write


@pytest.fixture
def make_tarball() -> Callable[[Path, Path, str], Path]:
    """Pack folder ``src`` into the gzipped tarball ``dest`` under the member prefix ``arcname``."""

    def write(src: Path, dest: Path, arcname: str) -> Path:
        with tarfile.open(dest, "w:gz") as tar:
            tar.add(src, arcname=arcname)
        return dest

    return write


@pytest.fixture
def pneumonia_npz() -> Callable[..., Path]:
    """Write a tiny MedMNIST-style npz (keys train/val/test _images/_labels); ``drop`` removes keys."""

    def write(path: Path, *, sizes: Sequence[int] = (20, 6, 8), drop: Sequence[str] = ()) -> Path:
        rng = np.random.default_rng(1)
        arrays = {}
        for split, n in zip(("train", "val", "test"), sizes):
            arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
        for key in drop:
            arrays.pop(key)
        np.savez(path, **arrays)
        return path

    return write
