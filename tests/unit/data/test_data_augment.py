"""CropFlip: matches a per-image reference, stays in the padded window, flips really mirror."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pqcompress.data.augment import CropFlip, crop_flip


def reference(x: torch.Tensor, params: torch.Tensor, pad: int) -> torch.Tensor:
    """torchvision semantics, one image at a time: zero-pad, crop at the offsets, then flip."""
    h, w = x.shape[-2:]
    out = []
    for img, (oy, ox, flip) in zip(x, params.tolist()):
        padded = F.pad(img, (pad, pad, pad, pad))
        crop = padded[:, oy : oy + h, ox : ox + w]
        out.append(crop.flip(-1) if flip else crop)
    return torch.stack(out)


def images(b: int = 6, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    """uint8 images whose pixels are all non-zero, so zero fill is visible."""
    return (torch.arange(b * c * h * w) % 250 + 1).to(torch.uint8).reshape(b, c, h, w)


def test_matches_reference_for_every_offset_and_flip() -> None:
    pad = 2
    aug = CropFlip(pad=pad)
    grid = torch.tensor(
        [(oy, ox, f) for oy in range(2 * pad + 1) for ox in range(2 * pad + 1) for f in (0, 1)]
    )
    x = images(b=len(grid))
    assert torch.equal(aug.apply(x, grid), reference(x, grid, pad))


@settings(max_examples=40, deadline=None)
@given(
    pad=st.integers(0, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
    flip=st.booleans(),
)
def test_property_matches_reference(pad: int, h: int, w: int, seed: int, flip: bool) -> None:
    aug = CropFlip(pad=pad, flip=flip)
    params = aug.draw(5, torch.Generator().manual_seed(seed))
    x = images(b=5, c=2, h=h, w=w)
    assert torch.equal(aug.apply(x, params), reference(x, params, pad))


def test_flip_mirrors_and_zero_shift_is_identity() -> None:
    x = images()
    zeros = torch.zeros(len(x), dtype=torch.int64)
    flip = torch.ones(len(x), dtype=torch.bool)
    assert torch.equal(crop_flip(x, zeros, zeros, flip, pad=0), x.flip(-1))
    assert torch.equal(crop_flip(x, zeros, zeros, ~flip, pad=0), x)
    centre = torch.full((len(x),), 3)
    assert torch.equal(crop_flip(x, centre, centre, ~flip, pad=3), x)
    assert torch.equal(crop_flip(x, centre, centre, flip, pad=3), x.flip(-1))


def test_crop_stays_in_padded_window() -> None:
    pad = 4
    aug = CropFlip(pad=pad)
    params = aug.draw(10_000, torch.Generator().manual_seed(0))
    assert params[:, :2].min() == 0 and params[:, :2].max() == 2 * pad
    assert set(params[:, 2].tolist()) == {0, 1}
    x = images(b=64, h=32, w=32)
    out = aug.apply(x, params[:64])
    for img, src, (oy, ox, _) in zip(out, x, params[:64].tolist()):
        dy, dx = oy - pad, ox - pad
        # rows/columns shifted in from outside the image are zero, the rest are image pixels
        zero_rows = abs(dy) * 32
        zero_cols = abs(dx) * 32 - abs(dy) * abs(dx)
        assert int((img[0] == 0).sum()) == zero_rows + zero_cols
        assert set(img[img > 0].tolist()) <= set(src.reshape(-1).tolist())


def test_no_flip_when_disabled_and_dtype_kept() -> None:
    aug = CropFlip(pad=1, flip=False)
    params = aug.draw(1000, torch.Generator().manual_seed(0))
    assert int(params[:, 2].sum()) == 0
    x = images().float()
    assert aug.apply(x, params[: len(x)]).dtype == torch.float32
    assert aug.to_dict() == {"kind": "crop_flip", "pad": 1, "flip": False}


def test_draw_is_deterministic() -> None:
    aug = CropFlip()
    a = aug.draw(100, torch.Generator().manual_seed(3))
    b = aug.draw(100, torch.Generator().manual_seed(3))
    c = aug.draw(100, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cutout_zeroes_one_clipped_square_per_image_after_the_crop() -> None:
    aug = CropFlip(pad=0, flip=False, cutout=4)
    params = aug.draw(200, torch.Generator().manual_seed(0))
    assert params.shape == (200, 5)
    x = images(200, 2, 8, 8)
    out = aug.apply(x, params)
    for img, p in zip(out, params.tolist()):
        cy, cx = (p[3] * 8) >> 16, (p[4] * 8) >> 16
        hole = torch.zeros(8, 8, dtype=torch.bool)
        hole[max(cy - 2, 0) : min(cy + 2, 8), max(cx - 2, 0) : min(cx + 2, 8)] = True
        assert bool((img[:, hole] == 0).all())  # every channel of the square is zeroed
        assert bool((img[:, ~hole] != 0).all())  # and nothing else
    sizes = {int((img[0] == 0).sum()) for img in out}
    assert 16 in sizes and min(sizes) < 16  # whole squares inside, clipped ones at the edges
    assert aug.to_dict() == {"kind": "crop_flip", "pad": 0, "flip": False, "cutout": 4}


def test_cutout_is_refused_without_image_augmentation() -> None:
    import pytest

    from pqcompress.config import DataConfig
    from pqcompress.errors import ConfigError

    with pytest.raises(ConfigError, match="cutout"):
        DataConfig(cutout=-1)
    with pytest.raises(ValueError, match="cutout"):
        CropFlip(cutout=-2)
