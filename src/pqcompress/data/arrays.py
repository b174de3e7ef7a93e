"""ArrayDataset: in-memory samples with batched, normalized (and optionally augmented) fetch."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch.utils.data import Dataset

from pqcompress.data.augment import CropFlip
from pqcompress.data.normalize import Normalization

TOKEN_DTYPES = (torch.int64, torch.int32)


class ArrayDataset(Dataset):
    """A view (``rows``) on shared in-memory tensors: uint8 images (N, C, H, W), float signals
    or integer token ids (N, L; int64/int32, returned as they are).

    Splits of one dataset share the same storage and differ only in ``rows``, so carving a
    validation set or a subset copies no sample data. ``__getitem__`` returns one normalized,
    un-augmented sample; the fast path is ``fetch`` (one indexing op for a whole batch), which
    ``make_loader`` uses together with per-epoch augmentation parameters.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        normalization: Normalization | None = None,
        augment: CropFlip | None = None,
        rows: Tensor | None = None,
        extras: Mapping[str, Tensor] | None = None,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if augment is not None and x.ndim != 4:
            raise ValueError("crop/flip augmentation needs images (N, C, H, W)")
        self.x = x
        self.y = y.to(torch.int64)
        self.normalization = normalization or Normalization.identity(x.shape[1])
        if self.normalization.channels != x.shape[1]:
            raise ValueError(
                f"normalization has {self.normalization.channels} channels, x has {x.shape[1]}"
            )
        self.augment = augment
        self.rows = torch.arange(x.shape[0]) if rows is None else rows.to(torch.int64)
        self.extras = dict(extras or {})
        self.target_extra: str | None = None
        self._scale, self._shift = self.normalization.scale_shift(x.ndim)
        self._identity = self.normalization == Normalization.identity(x.shape[1])

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def input_dtype(self) -> str:
        """The dtype of the x a batch holds: "float32", or the token ids' integer dtype."""
        return (
            str(self.x.dtype).removeprefix("torch.") if self.x.dtype in TOKEN_DTYPES else "float32"
        )

    @property
    def targets(self) -> Tensor:
        """Labels of this view's samples, int64 (len,)."""
        return self.y[self.rows]

    def extra(self, name: str) -> Tensor:
        """A per-sample side column of this view (e.g. ``"snr"`` for I/Q frames)."""
        return self.extras[name][self.rows]

    def select(self, positions: Tensor) -> ArrayDataset:
        """A view holding this view's samples at ``positions`` (no sample data is copied)."""
        return self._view(self.rows[torch.as_tensor(positions, dtype=torch.int64)], self.augment)

    def with_augment(self, augment: CropFlip | None) -> ArrayDataset:
        """The same samples with ``augment`` applied in ``make_loader`` batches."""
        return self._view(self.rows, augment)

    def with_extra(self, name: str, values: Tensor) -> ArrayDataset:
        """A view that also carries side column ``name`` (``values``: one row per *storage*
        sample, as ``self.x``); the other views of the storage are not changed."""
        if values.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"extra {name!r} has {values.shape[0]} rows, the storage has {self.x.shape[0]}"
            )
        view = self._view(self.rows, self.augment)
        view.extras = {**self.extras, name: values}
        return view

    def with_target_extra(self, name: str | None) -> ArrayDataset:
        """A view whose batches are ``(x, y, extra)`` with ``extra = extras[name][rows]`` (e.g.
        cached teacher logits for distillation), or plain ``(x, y)`` for ``None``."""
        if name is not None and name not in self.extras:
            raise KeyError(f"no extra column {name!r}; have {sorted(self.extras)}")
        view = self._view(self.rows, self.augment)
        view.target_extra = name
        return view

    def _view(self, rows: Tensor, augment: CropFlip | None) -> ArrayDataset:
        view = ArrayDataset.__new__(ArrayDataset)
        view.__dict__.update(self.__dict__)
        view.rows, view.augment = rows, augment
        return view

    # ------------------------------------------------------------------ fetch
    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        row = self.rows[index]
        return tuple(t[0] for t in self.fetch(row.reshape(1)))

    def fetch(self, rows: Tensor, augment_params: Tensor | None = None) -> tuple[Tensor, ...]:
        """Batch ``(x float32 (B, ...), y int64 (B,))`` of storage ``rows`` (token ids: x as
        stored, int64 or int32), augmented when
        ``augment_params`` (B, 3) from ``self.augment.draw`` are given, then normalized; with
        :meth:`with_target_extra` also the extra column's rows, ``(x, y, extra)``."""
        x = self.x[rows]
        if self.x.dtype in TOKEN_DTYPES:  # token ids stay integers, never normalized
            return (
                (x, self.y[rows])
                if self.target_extra is None
                else (x, self.y[rows], self.extras[self.target_extra][rows])
            )
        if augment_params is not None and self.augment is not None:
            x = self.augment.apply(x, augment_params)
        x = x.to(torch.float32)
        if not self._identity:
            x.mul_(self._scale).add_(self._shift)
        if self.target_extra is not None:
            return x, self.y[rows], self.extras[self.target_extra][rows]
        return x, self.y[rows]

    def __repr__(self) -> str:
        aug = f", augment={self.augment}" if self.augment else ""
        return f"ArrayDataset(len={len(self)}, sample_shape={self.sample_shape}{aug})"
