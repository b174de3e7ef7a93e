"""Teacher logits computed once per training sample: on disk, reused, recomputed when stale."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.augment import CropFlip
from pqcompress.data.loader import make_loader
from pqcompress.distill import TeacherCache, TeacherEnsemble, teacher_logits
from pqcompress.errors import CheckpointError
from pqcompress.testing.tiny import TinyConvNet


def dataset(n: int = 20) -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    return ArrayDataset(x, torch.arange(n) % 2, augment=CropFlip(pad=1, flip=True))


class Counting(TinyConvNet):
    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Counting.calls += 1
        return super().forward(x)


def ensemble(seed: int = 0) -> TeacherEnsemble:
    torch.manual_seed(seed)
    return TeacherEnsemble({"a": Counting(num_classes=2), "b": TinyConvNet(num_classes=2)})


def test_logits_match_the_members_on_clean_samples_and_rows_outside_are_nan() -> None:
    data = dataset()
    view = data.select(torch.arange(5, 20))
    ens = ensemble()
    logits = teacher_logits(ens, view, batch_size=4)
    assert logits.shape == (20, 2, 2)
    assert torch.isnan(logits[:5]).all() and not torch.isnan(logits[5:]).any()
    x, _ = data.with_augment(None).fetch(torch.arange(5, 20))
    assert torch.allclose(logits[5:], ens.member_logits(x), atol=1e-5)


def test_cache_file_is_reused_and_teachers_do_not_run_again(tmp_path: Path) -> None:
    data, ens = dataset(), ensemble()
    first = TeacherCache(tmp_path / "logits.pt").get(ens, data)
    Counting.calls = 0
    again = TeacherCache(tmp_path / "logits.pt")
    second = again.get(ens, data)
    assert Counting.calls == 0 and again.computed == 0
    assert torch.equal(first, second)


def test_other_teachers_or_samples_recompute(tmp_path: Path) -> None:
    path = tmp_path / "logits.pt"
    TeacherCache(path).get(ensemble(0), dataset())
    other = TeacherCache(path)
    other.get(ensemble(1), dataset())
    assert other.computed == 1
    other.get(ensemble(1), dataset(12))
    assert other.computed == 2


def test_damaged_cache_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "logits.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"teacher cache .* cannot be read.*delete it"):
        TeacherCache(path).get(ensemble(), dataset())


def test_batches_carry_the_cached_rows_through_shuffling_and_augmentation() -> None:
    data, ens = dataset(), ensemble()
    logits = teacher_logits(ens, data)
    view = data.with_extra("teacher", logits).with_target_extra("teacher")
    seen = 0
    for x, y, extra in make_loader(view, 6, shuffle=True, seed=3, epoch=1):
        # the label of each sample tells its row here (y = row % 2 is too weak): match rows
        rows = [int(torch.nonzero((logits[:, 0] == e[0]).all(1))[0]) for e in extra]
        assert y.tolist() == [r % 2 for r in rows]
        seen += x.shape[0]
    assert seen == 20
