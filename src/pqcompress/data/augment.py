"""Training augmentation on whole batches: random zero-padded crop plus horizontal flip, and
optionally Cutout (one zeroed square per image)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CropFlip:
    """Shift each image by up to ``pad`` pixels (zero fill) and mirror it with probability 1/2.

    Equivalent to torchvision's ``RandomCrop(size, padding=pad)`` followed by
    ``RandomHorizontalFlip()``, but drawn for a whole epoch at once (``draw``) and applied to
    a batch with one gather (``apply``), never a per-image Python loop. ``cutout > 0`` then
    zeroes one ``cutout`` x ``cutout`` square per image, centred anywhere in it and clipped at
    its edges (DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural
    Networks with Cutout"); zero is the pixel value before normalization, as the crop's
    padding is.
    """

    pad: int = 4
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be >= 0 (0 = off), got {self.cutout}")

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """Per-sample parameters (n, 3) int64: crop row offset, crop column offset, flip (0/1);
        with ``cutout``, (n, 5): then the square's centre as fractions of 2^16 of the height
        and width (the image size is known only in ``apply``).

        Offsets are positions of the crop window in the padded image, in ``0..2*pad``.
        """
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator)
        if self.flip:
            flips = torch.randint(0, 2, (n, 1), generator=generator)
        else:
            flips = torch.zeros(n, 1, dtype=torch.int64)
        parts = [offsets, flips]
        if self.cutout:
            parts.append(torch.randint(0, 1 << 16, (n, 2), generator=generator))
        return torch.cat(parts, dim=1)

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        """Augment a batch ``x`` (B, C, H, W) of any dtype with ``params`` from ``draw``."""
        out = crop_flip(x, params[:, 0], params[:, 1], params[:, 2] > 0, self.pad)
        if self.cutout and params.shape[1] >= 5:
            h, w = out.shape[-2:]
            cy, cx = (params[:, 3] * h) >> 16, (params[:, 4] * w) >> 16
            half = self.cutout // 2
            rows, cols = torch.arange(h), torch.arange(w)
            inside_r = (rows[None, :] >= (cy - half)[:, None]) & (
                rows[None, :] < (cy - half + self.cutout)[:, None]
            )
            inside_c = (cols[None, :] >= (cx - half)[:, None]) & (
                cols[None, :] < (cx - half + self.cutout)[:, None]
            )
            hole = inside_r[:, None, :, None] & inside_c[:, None, None, :]
            out = out.masked_fill(hole, 0)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "crop_flip", "pad": self.pad, "flip": self.flip}
        if self.cutout:
            out["cutout"] = self.cutout
        return out


def crop_flip(x: Tensor, top: Tensor, left: Tensor, flip: Tensor, pad: int) -> Tensor:
    """Crop each image of ``x`` (B, C, H, W) from its zero-padded version, then maybe mirror it.

    ``out[b, :, i, j] = padded[b, :, top[b] + i, left[b] + j']`` with ``j' = W - 1 - j`` where
    ``flip[b]``, else ``j``; ``top``/``left`` lie in ``0..2*pad``. One pad and one gather.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    wp = w + 2 * pad
    cols = torch.arange(w)
    rows = top[:, None] + torch.arange(h)  # (B, H) rows of the padded image
    cols = left[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (B, W)
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    out = padded.reshape(b, c, -1).gather(2, index)
    return out.reshape(b, c, h, w)
