"""radioml: clear DataErrors without h5py or the file, and a tiny fake HDF5 file when h5py exists."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pqcompress.config import DataConfig
from pqcompress.data import build_dataset
from pqcompress.data.radioml import FILE_NAME, RADIOML_CLASSES
from pqcompress.errors import ConfigError, DataError


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{FILE_NAME} not found in .*DeepSig"):
        build_dataset("radioml", DataConfig(root=str(tmp_path)))


def test_missing_h5py_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(DataError, match=r"pip install h5py .*pqcompress\[radioml\]"):
        build_dataset("radioml", DataConfig(root=str(tmp_path)))


def test_unknown_class_name(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"")
    with pytest.raises(ConfigError, match=r"unknown entries \['QAM16'\]"):
        build_dataset("radioml", DataConfig(root=str(tmp_path), options={"classes": ["QAM16"]}))


def write_fake(path: Path, per_cell: int = 6, length: int = 16) -> None:
    """A RadioML-shaped file: every class x SNR {-20, -10, 0, 10} cell holds per_cell frames,
    stored in contiguous blocks like the real file; frame values encode (class, snr, index)."""
    h5py = pytest.importorskip("h5py")
    snrs = np.array([-20, -10, 0, 10])
    cls = np.repeat(np.arange(24), len(snrs) * per_cell)
    snr = np.tile(np.repeat(snrs, per_cell), 24)
    n = cls.size
    x = np.zeros((n, length, 2), np.float32)
    x[:, :, 0] = cls[:, None]
    x[:, :, 1] = snr[:, None]
    x[:, 0, 0] = np.arange(n)
    with h5py.File(path, "w") as f:
        f["X"] = x
        f["Y"] = np.eye(24, dtype=np.int64)[cls]
        f["Z"] = snr[:, None].astype(np.int64)


def test_fake_file(tmp_path: Path) -> None:
    write_fake(tmp_path / FILE_NAME)
    cfg = DataConfig(root=str(tmp_path), val_fraction=0.0, options={"frames_per_class_snr": 5})
    bundle = build_dataset("radioml", cfg)
    assert bundle.class_names == ["OOK", "4ASK", "BPSK", "QPSK", "8PSK", "16QAM", "64QAM"]
    assert bundle.input_shape == (2, 16)
    n = 7 * 3 * 5  # 7 classes x SNR {-10, 0, 10} (min_snr -10) x 5 frames
    assert len(bundle.train) + len(bundle.test) == n and len(bundle.test) == round(0.3 * n)
    x, y = bundle.train.fetch(bundle.train.rows)
    # channel 0 holds the original class index, channel 1 the SNR: labels were remapped right
    original = torch.tensor([RADIOML_CLASSES.index(c) for c in bundle.class_names])
    assert torch.equal(x[:, 0, 1].long(), original[y])
    assert torch.equal(x[:, 1, 0], bundle.train.extra("snr"))
    assert bundle.train.extra("snr").min() >= -10


def test_fake_file_class_and_snr_options(tmp_path: Path) -> None:
    write_fake(tmp_path / "any_name.h5")
    options = {"classes": ["FM", "BPSK"], "min_snr": 0, "max_snr": 0, "frames_per_class_snr": None}
    bundle = build_dataset(
        "radioml", DataConfig(root=str(tmp_path / "any_name.h5"), val_fraction=0.0, options=options)
    )
    assert bundle.class_names == ["FM", "BPSK"]
    assert len(bundle.train) + len(bundle.test) == 2 * 6
    assert set(bundle.test.extra("snr").tolist()) == {0.0}


def test_unreadable_file(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    (tmp_path / FILE_NAME).write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"cannot read .* as HDF5"):
        build_dataset("radioml", DataConfig(root=str(tmp_path)))
