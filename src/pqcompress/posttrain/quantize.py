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
    """Runs a float16 copy of a model; floating inputs cast to float16 (token ids, masks and
    other integer or bool inputs stay as they are), floating outputs returned as float32."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(model).half().eval()

    def forward(self, *inputs: Any, **named: Any) -> Any:
        args = [_half(x) for x in inputs]
        kwargs = {k: _half(v) for k, v in named.items()}
        return _float(self.inner(*args, **kwargs))


def _half(x: Any) -> Any:
    return x.to(torch.float16) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


def _float(y: Any) -> Any:
    if isinstance(y, torch.Tensor):
        return y.float() if y.is_floating_point() else y
    if isinstance(y, tuple):
        return tuple(_float(v) for v in y)
    if isinstance(y, list):
        return [_float(v) for v in y]
    if isinstance(y, dict):  # a dict or a ModelOutput: the same kind back
        out = dict(y.items())
        for k, v in out.items():
            out[k] = _float(v)
        try:
            return type(y)(**out)
        except TypeError:
            return out
    return y


def to_float16(model: nn.Module) -> Float16Model:
    """float16 weights and activations (a copy); floating inputs are cast to float16, integer
    inputs (token ids) kept, so token models run too."""
    return Float16Model(model)
