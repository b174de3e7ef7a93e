"""Reader for the CIFAR-10 python release (``data_batch_1..5``, ``test_batch`` pickles), done safely."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pqcompress.data.safe_pickle import load_numpy_pickle
from pqcompress.errors import DataError

BATCH_NAME = re.compile(r"^(data_batch_(\d+)|test_batch)$")
NUM_CLASSES = 10


def batch_files(folder: Path) -> list[Path]:
    """``data_batch_*`` (in numeric order) then ``test_batch`` in ``folder``; DataError if absent."""
    found = {p.name: p for p in folder.iterdir() if BATCH_NAME.match(p.name)}
    train = sorted((n for n in found if n != "test_batch"), key=lambda n: int(n.rsplit("_", 1)[1]))
    if not train or "test_batch" not in found:
        raise DataError(
            f"{folder} is not a CIFAR-10 python batches folder: expected data_batch_1..5 and "
            f"test_batch, found {sorted(found) or 'none of them'}"
        )
    return [found[n] for n in train] + [found["test_batch"]]


def read_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One unpickled batch as (x uint8 (n, 3, 32, 32), y int64 (n,))."""
    batch = load_numpy_pickle(blob, where)
    if not isinstance(batch, dict):
        raise DataError(
            f"{where} is not a CIFAR-10 batch: expected a dict, got {type(batch).__name__}"
        )
    data = _field(batch, "data")
    labels = _field(batch, "labels")
    if data is None or labels is None:
        raise DataError(f"{where} is not a CIFAR-10 batch: it lacks the 'data' or 'labels' entry")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{where}: 'data' must be a uint8 array (n, 3072), got {shape}")
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if y.shape[0] != data.shape[0]:
        raise DataError(f"{where}: {data.shape[0]} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{where}: labels must be 0..{NUM_CLASSES - 1}")
    x = np.ascontiguousarray(data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32))
    return x, y


def read_batches(blobs: Mapping[str, bytes], where: str) -> dict[str, np.ndarray]:
    """``{x_train, y_train, x_test, y_test}`` from ``{batch file name: bytes}``."""
    names: Sequence[str] = sorted(
        (n for n in blobs if n != "test_batch"), key=lambda n: int(n.rsplit("_", 1)[1])
    )
    if not names or "test_batch" not in blobs:
        raise DataError(f"{where}: expected data_batch_1..5 and test_batch, found {sorted(blobs)}")
    train = [read_batch(blobs[n], f"{where}/{n}") for n in names]
    x_test, y_test = read_batch(blobs["test_batch"], f"{where}/test_batch")
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def _field(batch: dict, name: str) -> object:
    return batch.get(name.encode(), batch.get(name))
