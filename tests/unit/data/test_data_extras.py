"""ArrayDataset side columns as a third batch element (cached teacher logits), and plain views."""

from __future__ import annotations

import pytest
import torch

from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.loader import make_loader


def data() -> ArrayDataset:
    x = torch.arange(10 * 4, dtype=torch.uint8).reshape(10, 1, 2, 2)
    return ArrayDataset(x, torch.arange(10))


def test_target_extra_rides_along_in_row_order() -> None:
    values = torch.arange(10).float().mul(10).unsqueeze(1)
    view = data().select(torch.tensor([3, 7, 9])).with_extra("t", values).with_target_extra("t")
    ((_, y, extra),) = list(make_loader(view, 8, shuffle=False))
    assert y.tolist() == [3, 7, 9] and extra[:, 0].tolist() == [30.0, 70.0, 90.0]
    _, y1, e1 = view[1]
    assert y1.item() == 7 and e1.item() == 70.0


def test_plain_views_are_untouched() -> None:
    base = data()
    view = base.with_extra("t", torch.zeros(10, 1)).with_target_extra("t")
    assert len(next(iter(make_loader(base, 4, shuffle=False)))) == 2
    assert len(next(iter(make_loader(view.with_target_extra(None), 4, shuffle=False)))) == 2


def test_bad_extras_are_named() -> None:
    with pytest.raises(ValueError, match="extra 't' has 3 rows, the storage has 10"):
        data().with_extra("t", torch.zeros(3))
    with pytest.raises(KeyError, match="no extra column 'nope'"):
        data().with_target_extra("nope")
