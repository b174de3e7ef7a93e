"""pqcompress: compression-aware training (prune-then-quantize), compact model files, measurements.

Public API re-exports only; submodules are imported lazily so ``import pqcompress`` stays light.
"""

from __future__ import annotations

from pqcompress.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "CompressionConfig": "pqcompress.config",
    "ExperimentConfig": "pqcompress.config",
    "TrainConfig": "pqcompress.config",
    "DataConfig": "pqcompress.config",
    "LayerOverride": "pqcompress.config",
    "DistillConfig": "pqcompress.config",
    "preset_compression": "pqcompress.presets",
    "Compressor": "pqcompress.aware.compressor",
    "LayerStats": "pqcompress.aware.compressor",
    "fuse": "pqcompress.aware.fused_optim",
    "build_model": "pqcompress.models.registry",
    "available_models": "pqcompress.models.registry",
    "build_dataset": "pqcompress.data.registry",
    "available_datasets": "pqcompress.data.registry",
    "Trainer": "pqcompress.train.trainer",
    "RunResult": "pqcompress.train.result",
    "train_model": "pqcompress.train.trainer",
    "save": "pqcompress.codec",
    "load": "pqcompress.codec",
    "load_into": "pqcompress.codec",
    "InputSpec": "pqcompress.inputspec",
    "export_onnx": "pqcompress.export",
    "PQCError": "pqcompress.errors",
    "ConfigError": "pqcompress.errors",
}

__all__ = sorted(_EXPORTS)


# pqcompress.train is the package; the function is pqcompress.train_model
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), aliases={"train_model": "train"})
