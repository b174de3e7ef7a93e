"""RadioML 2018.01A (DeepSig HDF5: X (N,1024,2), Y one-hot (N,24), Z SNR): a class/SNR subset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pqcompress.config import DataConfig
from pqcompress.data.bundle import DataBundle
from pqcompress.data.modulation import iq_bundle, test_fraction_of
from pqcompress.data.options import name_list, number, resolve_options
from pqcompress.data.registry import register_dataset
from pqcompress.data.sources import describe, search_roots
from pqcompress.errors import ConfigError, DataError

FILE_NAME = "GOLD_XYZ_OSC.0001_1024.hdf5"
RADIOML_CLASSES = (
    "OOK", "4ASK", "8ASK", "BPSK", "QPSK", "8PSK", "16PSK", "32PSK", "16APSK", "32APSK",
    "64APSK", "128APSK", "16QAM", "32QAM", "64QAM", "128QAM", "256QAM", "AM-SSB-WC",
    "AM-SSB-SC", "AM-DSB-WC", "AM-DSB-SC", "FM", "GMSK", "OQPSK",
)  # fmt: skip
DEFAULTS: dict[str, Any] = {
    "classes": ["OOK", "4ASK", "BPSK", "QPSK", "8PSK", "16QAM", "64QAM"],
    "min_snr": -10,
    "max_snr": 30,
    "frames_per_class_snr": 1024,  # of 4,096 in the file; null = all (about 8 KiB per frame)
    "data_seed": 0,
    "test_fraction": 0.3,
}
_MAX_SPAN = 8192  # rows read in one contiguous HDF5 slice


def find_file(root: str | None = None) -> Path:
    """The RadioML HDF5 file: ``root`` itself or ``<dir>/GOLD_XYZ_OSC.0001_1024.hdf5``."""
    roots = search_roots(root)
    for place in roots:
        if place.is_file():
            return place
        if (place / FILE_NAME).is_file():
            return place / FILE_NAME
    raise DataError(
        f"RadioML 2018.01A file {FILE_NAME} not found in {describe(roots)}; download it from "
        "DeepSig (https://www.deepsig.ai/datasets) and set data.root to the file or its folder"
    )


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise DataError(
            "the radioml dataset needs h5py: pip install h5py (or pip install 'pqcompress[radioml]')"
        ) from None
    return h5py


def read_subset(path: Path, opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x float32 (N, 2, 1024), y int64 (N,) indexing opts['classes'], snr float32 (N,))``."""
    classes = name_list("radioml", "classes", opts["classes"], RADIOML_CLASSES)
    lo, hi = (
        number("radioml", "min_snr", opts["min_snr"]),
        number("radioml", "max_snr", opts["max_snr"]),
    )
    per = opts["frames_per_class_snr"]
    if per is not None and (isinstance(per, bool) or not isinstance(per, int) or per < 1):
        raise ConfigError(
            f"radioml: frames_per_class_snr must be a positive integer or null, got {per!r}"
        )
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("X", "Y", "Z") if k not in f]
            if missing:
                raise DataError(
                    f"{path} lacks datasets {missing}; expected X (N,1024,2), Y (N,24), Z (N,1)"
                )
            X, Y, Z = f["X"], f["Y"], f["Z"]
            if Y.ndim != 2 or Y.shape[1] != len(RADIOML_CLASSES) or X.ndim != 3 or X.shape[2] != 2:
                raise DataError(
                    f"{path}: expected X (N,L,2) and Y (N,24), got {X.shape} and {Y.shape}"
                )
            label = _argmax_rows(Y)
            snr = np.asarray(Z[...], dtype=np.float32).reshape(-1)
            wanted = np.array([RADIOML_CLASSES.index(c) for c in classes])
            keep = np.flatnonzero(np.isin(label, wanted) & (snr >= lo) & (snr <= hi))
            if per is not None:
                keep = _limit_per_cell(keep, label, snr, per, int(opts["data_seed"]))
            x = _read_rows(X, keep)
    except OSError as exc:
        raise DataError(f"cannot read {path} as HDF5: {exc}") from None
    if keep.size == 0:
        raise DataError(f"{path}: no frames of classes {classes} with SNR in [{lo}, {hi}] dB")
    remap = np.full(len(RADIOML_CLASSES), -1, dtype=np.int64)
    remap[wanted] = np.arange(len(wanted))
    x = np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)
    return x, remap[label[keep]], snr[keep]


def _argmax_rows(onehot: Any, chunk: int = 1 << 18) -> np.ndarray:
    """Row-wise argmax of an (N, K) HDF5 dataset, read in chunks (Y is ~0.5 GB in the real file)."""
    out = np.empty(onehot.shape[0], dtype=np.int64)
    for start in range(0, onehot.shape[0], chunk):
        out[start : start + chunk] = np.asarray(onehot[start : start + chunk]).argmax(axis=1)
    return out


def _limit_per_cell(
    keep: np.ndarray, label: np.ndarray, snr: np.ndarray, per: int, seed: int
) -> np.ndarray:
    """At most ``per`` rows (seeded random pick) of each (class, SNR) cell, sorted."""
    rng = np.random.default_rng([seed % 2**64, 11])
    shuffled = rng.permutation(keep)
    cell = label[shuffled] * 1000 + np.round(snr[shuffled]).astype(np.int64)
    order = np.argsort(cell, kind="stable")
    _, starts = np.unique(cell[order], return_index=True)
    rank = np.arange(order.size) - np.repeat(starts, np.diff(np.append(starts, order.size)))
    return np.sort(shuffled[order[rank < per]])


def _read_rows(dataset: Any, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for sorted ``rows``, read as a few contiguous slices (fast on HDF5)."""
    out = np.empty((rows.size, *dataset.shape[1:]), dtype=np.float32)
    i = 0
    while i < rows.size:
        j = int(np.searchsorted(rows, rows[i] + _MAX_SPAN, side="left"))
        block = dataset[int(rows[i]) : int(rows[j - 1]) + 1]
        out[i:j] = block[rows[i:j] - rows[i]]
        i = j
    return out


@register_dataset("radioml")
def build_radioml(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """RadioML 2018.01A subset (default 7 digital classes, SNR >= -10 dB), 70/30 train/test."""
    opts = resolve_options("radioml", cfg.options, DEFAULTS)
    test_fraction_of("radioml", opts)  # fail before reading
    path = find_file(cfg.root)
    frames = read_subset(path, opts)
    return iq_bundle("radioml", cfg, seed, frames, opts, f"RadioML 2018.01A from {path.resolve()}")
