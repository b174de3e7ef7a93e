"""The dataset registry and bundle assembly, on the always-available digits dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pqcompress.config import DataConfig
from pqcompress.data import DataBundle, available_datasets, build_dataset, register_dataset
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.assemble import assemble_bundle
from pqcompress.data.augment import CropFlip
from pqcompress.errors import ConfigError, RegistryError


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return build_dataset("digits", DataConfig(val_fraction=0.1), seed=0)


def test_builtins_are_registered() -> None:
    assert {"digits", "cifar10", "pneumonia", "modulation", "radioml"} <= set(available_datasets())


def test_unknown_name_is_a_registry_error_with_a_hint() -> None:
    with pytest.raises(RegistryError, match="did you mean 'digits'"):
        build_dataset("digit")


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown data option 'size'"):
        build_dataset("digits", DataConfig(options={"size": 8}))


def test_digits_bundle(digits: DataBundle) -> None:
    assert digits.num_classes == 10 and digits.class_names == [str(i) for i in range(10)]
    assert digits.input_shape == (1, 8, 8)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert len(digits.test) == 359
    x, y = digits.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    json.dumps(digits.preprocessing)  # JSON-safe
    assert digits.preprocessing["pixel_scale"] == 16.0 and digits.preprocessing["size"] == [8, 8]
    # normalized train data has about zero mean, unit std
    xs = torch.stack([digits.train[i][0] for i in range(len(digits.train))])
    assert abs(float(xs.mean())) < 0.05 and abs(float(xs.std()) - 1) < 0.05


def test_digits_augmentation_is_a_one_pixel_shift_on_train_only(digits: DataBundle) -> None:
    assert digits.train.augment == CropFlip(pad=1, flip=False)
    assert digits.val.augment is None and digits.test.augment is None
    off = build_dataset("digits", DataConfig(augment=False))
    assert off.train.augment is None
    cut = build_dataset("digits", DataConfig(cutout=2))
    assert cut.train.augment == CropFlip(pad=1, flip=False, cutout=2)
    assert cut.val.augment is None and cut.test.augment is None
    with pytest.raises(ConfigError, match=r"data.cutout=2 needs .*turned off"):
        build_dataset("digits", DataConfig(augment=False, cutout=2))


def rows(ds: ArrayDataset) -> set[int]:
    return set(ds.rows.tolist())


def test_splits_are_disjoint_seeded_and_stratified(digits: DataBundle) -> None:
    train, val, test = rows(digits.train), rows(digits.val), rows(digits.test)
    assert not (train & val) and not (train & test) and not (val & test)
    again = build_dataset("digits", DataConfig(val_fraction=0.1), seed=0)
    other = build_dataset("digits", DataConfig(val_fraction=0.1), seed=1)
    assert rows(again.val) == val and rows(other.val) != val
    assert rows(other.test) == test  # the test split never depends on the seed
    counts = torch.bincount(digits.val.targets, minlength=10)
    assert int(counts.min()) >= 13 and int(counts.max()) <= 16  # ~10% of ~144 per class


def test_subset_keeps_n_training_samples_and_the_same_val() -> None:
    full = build_dataset("digits", DataConfig(val_fraction=0.2), seed=3)
    small = build_dataset("digits", DataConfig(val_fraction=0.2, subset=50), seed=3)
    assert len(small.train) == 50
    assert rows(small.train) <= rows(full.train)
    assert rows(small.val) == rows(full.val)
    assert len(set(small.train.targets.tolist())) == 10  # stratified
    assert rows(build_dataset("digits", DataConfig(subset=50), seed=4).train) != rows(small.train)
    huge = build_dataset("digits", DataConfig(val_fraction=0.2, subset=10**6), seed=3)
    assert len(huge.train) == len(full.train)


def test_val_is_none_without_val_fraction() -> None:
    bundle = build_dataset("digits", DataConfig(val_fraction=0.0))
    assert bundle.val is None and len(bundle.train) == 1797 - 359


def test_register_a_new_dataset() -> None:
    @register_dataset("tiny_test_dataset")
    def build(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
        x = torch.arange(40 * 4, dtype=torch.float32).reshape(40, 1, 4)
        full = ArrayDataset(x, torch.arange(40) % 2)
        return assemble_bundle(
            "tiny_test_dataset",
            cfg,
            seed,
            train=full.select(np.arange(30)),
            test=full.select(np.arange(30, 40)),
            class_names=["a", "b"],
            augment=None,
            preprocessing={},
            source="test",
        )

    bundle = build_dataset("tiny_test_dataset", DataConfig(val_fraction=0.2))
    assert "tiny_test_dataset" in available_datasets()
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (24, 6, 10)
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("tiny_test_dataset")(build)
