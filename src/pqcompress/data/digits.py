"""scikit-learn's bundled 8x8 handwritten digits (1x8x8, 10 classes): always at hand, no files."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from pqcompress.config import DataConfig
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.assemble import assemble_bundle
from pqcompress.data.augment import CropFlip
from pqcompress.data.bundle import DataBundle
from pqcompress.data.normalize import Normalization
from pqcompress.data.options import resolve_options
from pqcompress.data.registry import register_dataset
from pqcompress.data.splits import fraction_count, stratified_pick

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the train/test split is fixed: test scores compare across runs and seeds
PIXEL_MAX = 16.0  # load_digits pixels are counts 0..16


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 8, 8), targets int64) from the CSV scikit-learn ships.

    Reads the file directly: importing scikit-learn costs seconds of start-up, the file
    is 1,797 rows. Falls back to ``sklearn.datasets.load_digits`` if the file moved.
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as fh:
                raw = np.loadtxt(fh, delimiter=",", dtype=np.float64)
            return raw[:, :-1].astype(np.uint8).reshape(-1, 8, 8), raw[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.uint8), data.target.astype(np.int64)


@register_dataset("digits")
def build_digits(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """1,797 digits, a fixed stratified 80/20 train/test split; augmentation = 1-pixel shift."""
    resolve_options("digits", cfg.options, {})
    images, target = _read_digits()
    x = torch.from_numpy(images[:, None])  # (N, 1, 8, 8), values 0..16
    y = torch.from_numpy(target)
    test_idx, train_idx = stratified_pick(
        target, fraction_count(len(target), TEST_FRACTION), SPLIT_SEED
    )
    norm = Normalization.fit(x[torch.from_numpy(train_idx)], pixel_scale=PIXEL_MAX)
    full = ArrayDataset(x, y, normalization=norm)
    return assemble_bundle(
        "digits",
        cfg,
        seed,
        train=full.select(torch.from_numpy(train_idx)),
        test=full.select(torch.from_numpy(test_idx)),
        class_names=[str(d) for d in range(10)],
        augment=CropFlip(pad=1, flip=False),
        preprocessing={"size": [8, 8], "channels": "L", "layout": "CHW"},
        source="sklearn.datasets.load_digits",
    )
