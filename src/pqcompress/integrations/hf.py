"""P->Q in the Hugging Face ``transformers.Trainer``: ``Trainer(..., callbacks=[PQTrainerCallback(config)])``.

After every optimizer step (``on_step_end``, after gradient accumulation) the compressor applies
P->Q to the model's weights. Its state is saved beside each of the Trainer's checkpoints
(``checkpoint-N/pqcompress_compressor.pt``) and read back when training resumes from one; at the
end of training the compressed model is saved as a ``.pqz`` when ``save_path`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig

STATE_FILE = "pqcompress_compressor.pt"


class PQTrainerCallback(TrainerCallback):  # type: ignore[misc]
    """Compression-aware training under a ``transformers.Trainer``."""

    def __init__(
        self,
        config: CompressionConfig | None = None,
        *,
        save_path: str | Path | None = None,
        **save_kwargs: Any,
    ) -> None:
        self.config = config if config is not None else CompressionConfig()
        self.save_path = save_path
        self.save_kwargs = save_kwargs
        self.compressor: Compressor | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        if self.compressor is None:
            self.compressor = Compressor(model, self.config)
        if state.global_step > 0:  # resumed from checkpoint-<step>: its compressor state
            saved = Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE
            if saved.is_file():
                self.compressor.load_state_dict(
                    torch.load(saved, map_location="cpu", weights_only=True)
                )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.compressor is not None:
            self.compressor.step()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.compressor is not None:
            self.compressor.epoch_end()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.compressor is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.compressor.state_dict(), folder / STATE_FILE)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if (
            self.save_path is not None
            and self.compressor is not None
            and state.is_world_process_zero
        ):
            from pqcompress.codec import save

            save(kwargs["model"], self.save_path, self.compressor, **self.save_kwargs)
