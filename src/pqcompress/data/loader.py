"""make_loader: a DataLoader whose order and augmentation depend only on (seed, epoch)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from pqcompress.data.arrays import ArrayDataset

_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


def epoch_generator(seed: int, epoch: int, stream: int = _ORDER_STREAM) -> torch.Generator:
    """A torch CPU generator seeded from (seed, epoch, stream) through NumPy's SeedSequence."""
    words = np.random.SeedSequence([seed % 2**64, epoch % 2**64, stream]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 31 ^ int(words[1]))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    shard: tuple[int, int] | None = None,
    even: bool = True,
) -> DataLoader:
    """Batches ``(x float32 [B, ...], y int64 [B])`` of ``dataset`` for one epoch.

    For an ``ArrayDataset`` (or a ``Subset`` of one) each batch is fetched with one indexing
    op and augmented on the whole batch; the order and every augmentation draw are functions
    of ``(seed, epoch)`` only (sample i gets the same crop/flip whatever the batch size), so a
    resumed run reproduces exactly. Any other map-style Dataset falls back to a plain
    DataLoader with default collation and a ``(seed, epoch)``-seeded shuffle.

    ``shard=(rank, world)`` keeps every ``world``-th sample of the epoch's order starting at
    ``rank`` (the same order on every rank, so the shards are disjoint and cover the epoch);
    ``even`` trims the shards to one length, so every rank runs the same number of steps (at
    most ``world - 1`` samples of an epoch are left out; training), else they keep every
    sample (evaluation, where counts are summed over ranks).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    base, rows = _unwrap(dataset)
    if base is None and shard is not None:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(
            dataset, num_replicas=shard[1], rank=shard[0], shuffle=shuffle, seed=seed,
            drop_last=even,
        )  # fmt: skip
        sampler.set_epoch(epoch)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last)
    if base is None:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=epoch_generator(seed, epoch) if shuffle else None,
            num_workers=0,
        )
    n = int(rows.shape[0])
    params = None
    if base.augment is not None:
        params = base.augment.draw(n, epoch_generator(seed, epoch, _AUGMENT_STREAM))
    if shuffle:
        perm = torch.randperm(n, generator=epoch_generator(seed, epoch))
        rows = rows[perm]
        params = None if params is None else params[perm]
    if shard is not None:
        rank, world = shard
        keep = torch.arange(rank, n, world)
        if even:
            keep = keep[: n // world]
        rows = rows[keep]
        params = None if params is None else params[keep]
        n = int(rows.shape[0])
    epoch_view = _EpochBatches(base, rows, params)
    sampler = _SliceBatchSampler(n, batch_size, drop_last)
    return DataLoader(epoch_view, batch_sampler=sampler, collate_fn=_as_is, num_workers=0)


def _unwrap(dataset: Dataset) -> tuple[ArrayDataset | None, Tensor]:
    """The ArrayDataset under ``dataset`` (through nested Subsets) and the storage rows it sees."""
    if isinstance(dataset, ArrayDataset):
        return dataset, dataset.rows
    if isinstance(dataset, Subset):
        base, rows = _unwrap(dataset.dataset)
        if base is not None:
            return base, rows[torch.as_tensor(list(dataset.indices), dtype=torch.int64)]
    return None, torch.empty(0, dtype=torch.int64)


def _as_is(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return batch


class _EpochBatches(Dataset):
    """One epoch's sample order and augmentation draws; ``__getitems__`` takes a slice of it."""

    def __init__(self, base: ArrayDataset, rows: Tensor, params: Tensor | None) -> None:
        self.base, self.rows, self.params = base, rows, params

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__(slice(index, index + 1)))

    def __getitems__(self, span: slice) -> tuple[Tensor, ...]:
        params = None if self.params is None else self.params[span]
        return self.base.fetch(self.rows[span], params)


class _SliceBatchSampler(Sampler[slice]):
    """Yields ``slice(start, stop)`` for consecutive batches of an epoch already put in order."""

    def __init__(self, n: int, batch_size: int, drop_last: bool) -> None:
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[slice]:
        for i in range(len(self)):
            start = i * self.batch_size
            yield slice(start, min(start + self.batch_size, self.n))
