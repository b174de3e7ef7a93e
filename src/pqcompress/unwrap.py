"""The user's own module inside the wrappers training puts around it: DistributedDataParallel,
DataParallel and ``torch.compile``. Names recorded on the underlying module (``features.0``,
not ``module.features.0`` or ``_orig_mod.features.0``) are the names of the plain model, so a
compressor, a ``.pqz`` file or an ONNX graph made from any wrapper fits the bare model."""

from __future__ import annotations

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """``model`` without DDP / DataParallel / compile wrappers (any nesting); the model
    itself when it is not wrapped."""
    for _ in range(8):  # wrappers nest at most a few deep (compile(DDP(model)) ...)
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
            continue
        break
    return model
