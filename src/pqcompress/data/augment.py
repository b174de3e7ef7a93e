"""Training augmentation on whole batches: random zero-padded crop plus horizontal flip."""

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
    a batch with one gather (``apply``), never a per-image Python loop.
    """

    pad: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """Per-sample parameters (n, 3) int64: crop row offset, crop column offset, flip (0/1).

        Offsets are positions of the crop window in the padded image, in ``0..2*pad``.
        """
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator)
        if self.flip:
            flips = torch.randint(0, 2, (n, 1), generator=generator)
        else:
            flips = torch.zeros(n, 1, dtype=torch.int64)
        return torch.cat([offsets, flips], dim=1)

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        """Augment a batch ``x`` (B, C, H, W) of any dtype with ``params`` (B, 3) from ``draw``."""
        return crop_flip(x, params[:, 0], params[:, 1], params[:, 2] > 0, self.pad)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "crop_flip", "pad": self.pad, "flip": self.flip}


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
