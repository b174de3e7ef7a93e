"""make_loader: one pass covers every sample once, and order/augmentation depend on (seed, epoch) only."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from pqcompress.data import ArrayDataset, make_loader
from pqcompress.data.augment import CropFlip
from pqcompress.data.normalize import Normalization

PAD2 = CropFlip(pad=2)


def image_dataset(n: int = 103, augment: CropFlip | None = PAD2) -> ArrayDataset:
    x = torch.randint(
        1, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    # sample i is recognisable: its label is i
    return ArrayDataset(
        x, torch.arange(n), normalization=Normalization((0.5,) * 3, (0.25,) * 3), augment=augment
    )


def collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("batch_size", [1, 10, 64, 500])
def test_every_sample_exactly_once_per_epoch(batch_size: int) -> None:
    data = image_dataset()
    loader = make_loader(data, batch_size, shuffle=True, seed=1, epoch=2)
    assert len(loader) == -(-len(data) // batch_size)
    x, y = collect(loader)
    assert sorted(y.tolist()) == list(range(len(data)))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (len(data), 3, 8, 8)


def test_drop_last_and_no_shuffle_order() -> None:
    data = image_dataset(augment=None)
    loader = make_loader(data, 10, shuffle=False, drop_last=True)
    assert len(loader) == 10
    batches = list(loader)
    assert all(len(y) == 10 for _, y in batches)
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(100))
    x0, _ = batches[0]
    assert torch.allclose(x0[3], data[3][0])  # un-augmented batch fetch == per-sample item


def test_same_seed_and_epoch_reproduce_exactly() -> None:
    data = image_dataset()
    a = collect(make_loader(data, 16, shuffle=True, seed=5, epoch=3))
    b = collect(make_loader(data, 16, shuffle=True, seed=5, epoch=3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_different_epochs_and_seeds_differ() -> None:
    data = image_dataset()
    base_x, base_y = collect(make_loader(data, 16, shuffle=True, seed=5, epoch=3))
    for seed, epoch in [(5, 4), (6, 3), (3, 5)]:
        x, y = collect(make_loader(data, 16, shuffle=True, seed=seed, epoch=epoch))
        assert not torch.equal(y, base_y)
        # same samples, different augmentation
        assert not torch.equal(x[y.argsort()], base_x[base_y.argsort()])


def test_augmentation_of_a_sample_does_not_depend_on_batch_size_or_shuffle() -> None:
    data = image_dataset()
    x1, y1 = collect(make_loader(data, 7, shuffle=True, seed=2, epoch=1))
    x2, y2 = collect(make_loader(data, 50, shuffle=False, seed=2, epoch=1))
    assert torch.equal(x1[y1.argsort()], x2[y2.argsort()])


def test_augmentation_changes_samples_but_only_when_attached() -> None:
    plain = image_dataset(augment=None)
    x, _ = collect(make_loader(plain, 32, shuffle=False, epoch=7))
    expected = torch.stack([plain[i][0] for i in range(len(plain))])
    assert torch.allclose(x, expected)
    aug_x, _ = collect(make_loader(plain.with_augment(CropFlip(pad=2)), 32, shuffle=False, epoch=7))
    assert not torch.allclose(aug_x, expected)


def test_subset_of_array_dataset_uses_fast_path() -> None:
    data = image_dataset()
    subset = Subset(Subset(data, list(range(10, 60))), list(range(0, 50, 2)))
    loader = make_loader(subset, 8, shuffle=True, seed=0)
    assert loader.collate_fn.__name__ == "_as_is"
    _, y = collect(loader)
    assert sorted(y.tolist()) == list(range(10, 60, 2))


def test_plain_dataset_falls_back_to_default_collate() -> None:
    ds = TensorDataset(torch.randn(37, 4), torch.arange(37))
    a = collect(make_loader(ds, 5, shuffle=True, seed=1, epoch=0))
    b = collect(make_loader(ds, 5, shuffle=True, seed=1, epoch=0))
    c = collect(make_loader(ds, 5, shuffle=True, seed=1, epoch=1))
    assert sorted(a[1].tolist()) == list(range(37))
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def test_float_signals_pass_through_unchanged() -> None:
    x = torch.randn(20, 2, 64)
    data = ArrayDataset(x, torch.arange(20) % 3)
    xb, yb = collect(make_loader(data, 6, shuffle=False))
    assert torch.equal(xb, x) and torch.equal(yb, torch.arange(20) % 3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_rejects_bad_batch_size(bad) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(image_dataset(), bad, shuffle=False)
