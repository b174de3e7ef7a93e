"""Batches of one split of a registered dataset: evaluation loaders and calibration inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pqcompress.errors import ConfigError


def split_loader(
    dataset: str,
    split: str = "test",
    *,
    root: str | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    shuffle: bool = False,
    options: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """(loader, bundle) over one split of a registered dataset, without augmentation;
    ``options`` are the dataset's own (e.g. a run's ``data.options``)."""
    import torch
    from torch.utils.data import Subset

    from pqcompress.config import DataConfig
    from pqcompress.data import build_dataset, make_loader

    bundle = build_dataset(
        dataset, DataConfig(root=root, augment=False, options=dict(options or {}))
    )
    data = getattr(bundle, split)
    if data is None:
        raise ConfigError(f"dataset {dataset!r} has no {split!r} split")
    if limit is not None:
        data = Subset(data, torch.arange(min(int(limit), len(data))).tolist())
    return make_loader(data, batch_size, shuffle=shuffle), bundle


def evaluation_view(dataset: Any) -> Any:
    """``dataset`` as evaluation sees it: un-augmented, yielding plain ``(x, y)`` batches
    (datasets without those views, e.g. a plain torch Dataset, are returned as they are)."""
    if hasattr(dataset, "with_augment"):
        dataset = dataset.with_augment(None)
    if getattr(dataset, "target_extra", None) is not None:
        dataset = dataset.with_target_extra(None)
    return dataset


def input_batches(loader: Any, batches: int) -> list:
    """The inputs of the first ``batches`` batches of ``loader`` (for calibration)."""
    out = []
    for batch in loader:
        out.append(batch[0])
        if len(out) >= batches:
            break
    return out


def calibration_batches(
    dataset: str,
    *,
    root: str | None = None,
    batches: int = 8,
    batch_size: int = 64,
    options: Mapping[str, Any] | None = None,
) -> list:
    """A few shuffled training batches (inputs only) for activation calibration."""
    loader, _ = split_loader(
        dataset, "train", root=root, batch_size=batch_size, shuffle=True, options=options
    )
    return input_batches(loader, batches)
