"""The dataset registry: register builders by name and build a DataBundle from a name plus config."""

from __future__ import annotations

from collections.abc import Callable

from pqcompress.config import DataConfig
from pqcompress.data.bundle import DataBundle
from pqcompress.registry import Registry

DatasetBuilder = Callable[..., DataBundle]

_DATASETS: Registry[DatasetBuilder] = Registry("dataset")


def register_dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register ``fn(cfg: DataConfig, *, seed: int) -> DataBundle`` under ``name``."""
    return _DATASETS.register(name)


def available_datasets() -> list[str]:
    """Sorted names of every registered dataset."""
    return _DATASETS.names()


def build_dataset(name: str, cfg: DataConfig | None = None, *, seed: int = 0) -> DataBundle:
    """Build the registered dataset ``name``.

    ``seed`` drives the validation carve-out and ``cfg.subset`` (``cfg.split_seed``, when
    set, instead); fixed test splits and generated data do not depend on it. Unknown names
    raise RegistryError, missing or malformed data DataError, unknown ``cfg.options`` keys
    ConfigError.
    """
    builder = _DATASETS.get(name)
    cfg = cfg if cfg is not None else DataConfig()
    return builder(cfg, seed=seed if cfg.split_seed is None else cfg.split_seed)
