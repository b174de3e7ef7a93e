"""pneumonia from a tiny MedMNIST npz or an image tree of X-rays, and its DataErrors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pqcompress.config import DataConfig
from pqcompress.data import build_dataset
from pqcompress.data.augment import CropFlip
from pqcompress.errors import DataError

SHARED_NPZ = Path(os.environ.get("PQCOMPRESS_DATA_DIR", "none"), "pneumoniamnist.npz")


def build(root: Path, **kw):
    return build_dataset("pneumonia", DataConfig(root=str(root), **kw))


def test_npz_with_its_own_val_split(tmp_path: Path, pneumonia_npz) -> None:
    path = pneumonia_npz(tmp_path / "pneumoniamnist.npz", sizes=(20, 6, 8))
    for root in (path, tmp_path):  # the file itself, or the folder holding it
        bundle = build(root, val_fraction=0.5)  # val_fraction is ignored: the npz has a val split
        assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (20, 6, 8)
    assert bundle.class_names == ["normal", "pneumonia"] and bundle.num_classes == 2
    assert bundle.input_shape == (1, 28, 28)
    assert bundle.train.targets.tolist() == [0, 1] * 10
    with np.load(path) as npz:
        assert np.array_equal(bundle.test.x[:, 0].numpy(), npz["test_images"])
    x, y = bundle.val[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert bundle.train.augment == CropFlip(pad=2, flip=True)
    assert bundle.preprocessing["channels"] == "L" and bundle.preprocessing["size"] == [28, 28]


def test_size_option_resizes(tmp_path: Path, pneumonia_npz) -> None:
    path = pneumonia_npz(tmp_path / "p.npz")
    bundle = build(path, options={"size": 32})
    assert bundle.input_shape == (1, 32, 32) and bundle.preprocessing["size"] == [32, 32]


def test_npz_missing_keys(tmp_path: Path, pneumonia_npz) -> None:
    path = pneumonia_npz(tmp_path / "p.npz", drop=["val_labels", "test_images"])
    with pytest.raises(DataError, match=r"missing keys \['val_labels', 'test_images'\]"):
        build(path)


def test_npz_bad_labels(tmp_path: Path) -> None:
    arrays = {f"{s}_images": np.zeros((4, 28, 28), np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": np.full((4, 1), 3) for s in ("train", "val", "test")}
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match=r"train_labels must hold one label 0/1 per image"):
        build(tmp_path / "p.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    bad = tmp_path / "pneumoniamnist.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read .*pneumoniamnist\.npz as an \.npz archive"):
        build(tmp_path)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; expected pneumoniamnist\.npz"):
        build(tmp_path / "nowhere")


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no PneumoniaMNIST data in .*train/\{NORMAL,PNEUMONIA\}"):
        build(tmp_path)


def test_image_tree_of_xrays(tmp_path: Path, image_tree) -> None:
    root = tmp_path / "chest_xray"
    image_tree(root, splits=("train", "test"), classes=("NORMAL", "PNEUMONIA"),
               per_class=5, ext="jpeg", size=(60, 45))  # fmt: skip
    bundle = build(tmp_path, val_fraction=0.2, options={"size": 16})  # finds chest_xray/
    assert bundle.input_shape == (1, 16, 16)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (8, 2, 10)
    assert bundle.test.targets.tolist() == [0] * 5 + [1] * 5
    assert bundle.train.x.dtype == torch.uint8


def test_image_tree_with_val_and_lowercase_classes(tmp_path: Path, image_tree) -> None:
    image_tree(tmp_path, splits=("train", "val", "test"), classes=("normal", "pneumonia"),
               per_class=2, ext="png", mode="L", size=(28, 28))  # fmt: skip
    bundle = build(tmp_path)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (4, 4, 4)


def test_image_tree_wrong_classes(tmp_path: Path, image_tree) -> None:
    image_tree(tmp_path, classes=("NORMAL", "COVID"), per_class=1, size=(8, 8))
    with pytest.raises(DataError, match=r"missing class folders \['pneumonia'\]"):
        build(tmp_path)


@pytest.mark.skipif(not SHARED_NPZ.is_file(), reason="no shared pneumoniamnist.npz")
def test_real_pneumoniamnist() -> None:
    bundle = build(SHARED_NPZ)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (3882, 524, 624)
    assert bundle.input_shape == (1, 28, 28)
    assert set(bundle.test.targets.tolist()) == {0, 1}
