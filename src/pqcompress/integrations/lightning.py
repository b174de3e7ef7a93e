"""P->Q in PyTorch Lightning: ``trainer = L.Trainer(callbacks=[PQCallback(config)])``.

After every optimizer step (gradient accumulation respected: it follows ``global_step``) the
compressor applies P->Q to the LightningModule's weights (or to one attribute of it,
``attr="model"``, so the names are those of the plain model). Its state rides in Lightning's
own checkpoints (``state_dict``/``load_state_dict``), so ``fit(ckpt_path=...)`` resumes it, and
at the end of ``fit`` the compressed model is saved as a ``.pqz`` when ``save_path`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch import nn

from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig


class PQCallback(pl.Callback):  # type: ignore[misc]
    """Compression-aware training under a Lightning ``Trainer``."""

    def __init__(
        self,
        config: CompressionConfig | None = None,
        *,
        attr: str | None = None,
        save_path: str | Path | None = None,
        **save_kwargs: Any,
    ) -> None:
        self.config = config if config is not None else CompressionConfig()
        self.attr = attr
        self.save_path = save_path
        self.save_kwargs = save_kwargs
        self.compressor: Compressor | None = None
        self._pending: dict[str, Any] | None = None
        self._last_step = -1

    def _target(self, pl_module: pl.LightningModule) -> nn.Module:
        return getattr(pl_module, self.attr) if self.attr else pl_module

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.compressor is None:
            self.compressor = Compressor(self._target(pl_module), self.config)
            if self._pending is not None:  # a checkpoint's state, read before setup
                self.compressor.load_state_dict(self._pending)
                self._pending = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self.compressor is not None and trainer.global_step != self._last_step:
            self._last_step = trainer.global_step  # an optimizer step happened: compress
            self.compressor.step()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.compressor is not None:
            self.compressor.epoch_end()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_path is not None and self.compressor is not None and trainer.is_global_zero:
            from pqcompress.codec import save

            save(self._target(pl_module), self.save_path, self.compressor, **self.save_kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {"compressor": self.compressor.state_dict() if self.compressor else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("compressor")
        if state is None:
            return
        if self.compressor is not None:
            self.compressor.load_state_dict(state)
        else:
            self._pending = state
