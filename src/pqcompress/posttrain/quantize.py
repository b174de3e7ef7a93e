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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pqcompress.errors import ConfigError
from pqcompress.inputspec import as_specs


def quantize_dynamic_int8(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Dynamic int8 quantization of every ``nn.Linear`` (a new module unless ``inplace``).

    ``nn.TransformerEncoderLayer``'s fast path reads its Linear layers' float weights, which
    a dynamically quantized Linear no longer has: a model holding one is returned inside
    :class:`NoFastPath`, which turns torch's MHA fast path off while it runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated (torchao)
        from torch.ao.quantization import quantize_dynamic

        out = quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=inplace)
    if any(isinstance(m, nn.TransformerEncoderLayer) for m in out.modules()):
        return NoFastPath(out)
    return out


class NoFastPath(nn.Module):
    """Runs ``inner`` with torch's multi-head-attention fast path off (restored after)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: Any, **named: Any) -> Any:
        before = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            return self.inner(*inputs, **named)
        finally:
            torch.backends.mha.set_fastpath_enabled(before)


def _tensor(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x).cpu()
    return t.float() if t.is_floating_point() else t  # token ids and masks keep their dtype


def calibration_args(batch: Any, inputs: Sequence[Any] | None = None) -> tuple[torch.Tensor, ...]:
    """One calibration batch as the model's positional inputs: a tensor (one input), a
    tuple/list (``(x, y)`` pairs give ``x``; with ``inputs``, the first ``len(inputs)``
    items) or a dict by input name (``inputs`` gives the order)."""
    specs = as_specs(inputs) if inputs is not None else None
    if isinstance(batch, Mapping):
        if specs is None:
            raise ConfigError("a dict calibration batch needs inputs= (the input order)")
        missing = [s.name for s in specs if s.name not in batch]
        if missing:
            raise ConfigError(f"a calibration batch lacks inputs {missing}")
        return tuple(_tensor(batch[s.name]) for s in specs)
    if isinstance(batch, (tuple, list)):
        count = len(specs) if specs is not None else 1
        if len(batch) < count:
            raise ConfigError(
                f"a calibration batch holds {len(batch)} items; the model takes {count} inputs"
            )
        return tuple(_tensor(b) for b in batch[:count])
    return (_tensor(batch),)


def quantize_static_int8(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    backend: str = "x86",
    inputs: Sequence[Any] | None = None,
) -> nn.Module:
    """Static int8 (FX graph mode): conv and linear layers, activations calibrated;
    embeddings get int8 weights (per-row scales), as torch's default mapping says.

    ``calibration``: an iterable of input batches (tensors, (x, y) pairs, tuples in input
    order or dicts by input name with ``inputs``, the model's InputSpecs); token ids keep
    their integer dtype. The model is copied; the returned GraphModule runs on CPU only.
    A model FX cannot trace symbolically (data-dependent Python control flow, many
    ``transformers`` models) raises ConfigError pointing to the ONNX Runtime path.
    """
    batches = [calibration_args(b, inputs) for b in calibration]
    if not batches:
        raise ConfigError("static int8 needs at least one calibration batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = backend if backend != "x86" else _engine()
        m = copy.deepcopy(model).cpu().eval()
        try:
            prepared = prepare_fx(m, get_default_qconfig_mapping(backend), batches[0])
            with torch.no_grad():
                for args in batches:
                    prepared(*args)
                converted = convert_fx(prepared)
                converted(*batches[0])  # a converted graph that cannot run is no result
            return converted
        except Exception as exc:  # FX symbolic tracing or a kernel it cannot place
            detail = " ".join(str(exc).split())[:200]
            raise ConfigError(
                f"static int8 (torch FX) cannot quantize this model ({type(exc).__name__}: "
                f"{detail}); use the ONNX Runtime path instead (CLI --quantize ort-int8, or "
                "pqcompress.export.export_onnx(..., inputs=..., int8=True)), which quantizes "
                "the exported graph"
            ) from None


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
