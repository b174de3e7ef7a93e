"""Datasets by name (digits, cifar10, pneumonia, modulation, radioml) and a fast seeded loader.

Importing this package registers every built-in dataset.
"""

from __future__ import annotations

from pqcompress.data import cifar10, digits, modulation, pneumonia, radioml  # noqa: F401  (register)
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.bundle import DataBundle
from pqcompress.data.loader import make_loader
from pqcompress.data.registry import available_datasets, build_dataset, register_dataset

__all__ = [
    "ArrayDataset",
    "DataBundle",
    "available_datasets",
    "build_dataset",
    "make_loader",
    "register_dataset",
]
