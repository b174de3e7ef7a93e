"""Turn a dataset's decoded splits into a DataBundle: validation carve-out, subset, augmentation."""

from __future__ import annotations

import dataclasses
from typing import Any

from pqcompress.config import DataConfig
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.augment import CropFlip
from pqcompress.data.bundle import DataBundle
from pqcompress.data.splits import fraction_count, stratified_pick
from pqcompress.errors import ConfigError

_VAL_STREAM, _SUBSET_STREAM = 1, 2


def assemble_bundle(
    name: str,
    cfg: DataConfig,
    seed: int,
    *,
    train: ArrayDataset,
    test: ArrayDataset,
    val: ArrayDataset | None = None,
    class_names: list[str],
    augment: CropFlip | None,
    preprocessing: dict[str, Any],
    source: str,
) -> DataBundle:
    """Bundle the splits; ``val=None`` means "carve ``cfg.val_fraction`` out of train".

    The carve-out and ``cfg.subset`` are class-stratified and seeded by ``seed`` (separate
    streams, so the validation set does not change with the subset size). Augmentation is
    attached to the train split only, and only when ``cfg.augment``; ``cfg.cutout`` adds
    Cutout to the dataset's crop and flip.
    """
    key = seed % 2**64
    if val is None and cfg.val_fraction > 0:
        count = fraction_count(len(train), cfg.val_fraction)
        if count > 0:
            picked, rest = stratified_pick(train.targets.numpy(), count, [key, _VAL_STREAM])
            val, train = train.select(picked), train.select(rest)
    if cfg.subset is not None and cfg.subset < len(train):
        picked, _ = stratified_pick(train.targets.numpy(), cfg.subset, [key, _SUBSET_STREAM])
        train = train.select(picked)
    if cfg.cutout and (augment is None or not cfg.augment):
        raise ConfigError(
            f"data.cutout={cfg.cutout} needs an image dataset with training augmentation on "
            f"({name!r} has {'none' if augment is None else 'it turned off: data.augment'})"
        )
    if augment is not None and cfg.cutout:
        augment = dataclasses.replace(augment, cutout=cfg.cutout)
    train = train.with_augment(augment if cfg.augment else None)
    if val is not None:
        val = val.with_augment(None)
    return DataBundle(
        name=name,
        train=train,
        val=val,
        test=test.with_augment(None),
        num_classes=len(class_names),
        input_shape=train.sample_shape,
        class_names=list(class_names),
        preprocessing=(
            {**preprocessing, **train.normalization.to_dict()}
            if train.input_dtype == "float32"
            else dict(preprocessing)  # token ids are not normalized
        ),
        source=source,
        input_dtype=train.input_dtype,
    )
