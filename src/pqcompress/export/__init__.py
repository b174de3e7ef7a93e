"""Deployment formats: ONNX (float32, int8 QDQ and dynamic int8 for ONNX Runtime) — see docs/export.md."""

from __future__ import annotations

from pqcompress.export.onnx import (
    ExportError,
    OrtModel,
    coded_tensors,
    export_onnx,
    export_onnx_dynamic_int8,
    load_onnx,
    native_int8,
    weight_codes,
)

__all__ = [
    "ExportError",
    "OrtModel",
    "coded_tensors",
    "export_onnx",
    "export_onnx_dynamic_int8",
    "load_onnx",
    "native_int8",
    "weight_codes",
]
