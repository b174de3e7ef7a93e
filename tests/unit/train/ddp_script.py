"""Run under torchrun by test_train_ddp.py: one training run of the library API on several
processes, each then writing the SHA-256 of its final weights (and compressor state) to
OUT/rank<R>.sha256."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import torch

from pqcompress.config import CompressionConfig, DataConfig, ExperimentConfig, TrainConfig
from pqcompress.train.trainer import Trainer


def main(out: str) -> None:
    from pqcompress.data.registry import build_dataset
    from pqcompress.models.registry import build_model

    cfg = ExperimentConfig(
        model="cnn5",
        dataset="digits",
        data=DataConfig(val_fraction=0.1),
        train=TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=3, threads=1),
        compression=CompressionConfig(bits=4, alpha=0.5, rounding="stochastic"),
    )
    bundle = build_dataset(cfg.dataset, cfg.data, seed=cfg.train.seed)
    torch.manual_seed(cfg.train.seed + int(os.environ["RANK"]))  # different inits: DDP aligns them
    model = build_model(cfg.model, num_classes=bundle.num_classes, input_shape=bundle.input_shape)
    trainer = Trainer(model, bundle, cfg.train, cfg.compression, Path(out) / "run",
                      progress=False, config_dict=cfg.to_dict())  # fmt: skip
    result = trainer.fit()
    h = hashlib.sha256()
    for name, t in sorted(trainer.model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    state = trainer.compressor.state_dict()
    for name in sorted(state.get("residuals", {}) or {}):
        h.update(state["residuals"][name].numpy().tobytes())
    line = f"{h.hexdigest()} {result.best_test_acc} {result.epochs_run}\n"
    (Path(out) / f"rank{os.environ['RANK']}.sha256").write_text(line)


if __name__ == "__main__":
    main(sys.argv[1])
