"""Post-training quantization in PyTorch: dynamic int8 (Linear), static int8 (FX), float16.

What the torch path can and cannot do (torch 2.x, CPU):

- ``quantize_dynamic_int8``: ``torch.ao.quantization.quantize_dynamic`` on ``nn.Linear``
  (weights int8, activations quantized per batch at run time). ``torch.ao.quantization`` warns
  that it is deprecated (moving to torchao); the warning is silenced here and stated in
  docs/export.md. Conv layers stay float.
- ``quantize_static_int8``: FX graph mode (``prepare_fx``/``convert_fx``, x86 qconfig),
  calibrated on a few batches; conv + linear run on int8 kernels (fbgemm/x86). The result
  cannot be reloaded after ``torch.save`` of the module (measured: loading fails); save
  it with TorchScript (``torch.jit.save(torch.jit.trace(m, x))``) or use the ONNX Runtime
  path (``pqcompress.export.export_onnx(..., int8=True)``), the supported int8 deployment.
- ``to_float16``: ``model.half()`` behind a wrapper that casts inputs to float16 and the
  logits back to float32.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pqcompress.errors import ConfigError


def quantize_dynamic_int8(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Dynamic int8 quantization of every ``nn.Linear`` (a new module unless ``inplace``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated (torchao)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=inplace)


def _first(batch: Any) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def quantize_static_int8(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    backend: str = "x86",
) -> nn.Module:
    """Static int8 (FX graph mode): conv and linear layers, activations calibrated.

    ``calibration``: an iterable of input batches (tensors or (x, y) pairs). The model is
    copied; the returned GraphModule runs on CPU only.
    """
    batches = [_first(b).float().cpu() for b in calibration]
    if not batches:
        raise ConfigError("static int8 needs at least one calibration batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = backend if backend != "x86" else _engine()
        m = copy.deepcopy(model).cpu().eval()
        prepared = prepare_fx(m, get_default_qconfig_mapping(backend), (batches[0],))
        with torch.no_grad():
            for x in batches:
                prepared(x)
        return convert_fx(prepared)


def _engine() -> str:
    engines = torch.backends.quantized.supported_engines
    return "x86" if "x86" in engines else ("fbgemm" if "fbgemm" in engines else engines[0])


class Float16Model(nn.Module):
    """Runs a float16 copy of a model; inputs cast to float16, logits returned as float32."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(model).half().eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(torch.float16)).float()


def to_float16(model: nn.Module) -> Float16Model:
    """float16 weights and activations (a copy); call it with float32 inputs."""
    return Float16Model(model)
