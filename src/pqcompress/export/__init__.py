"""Deployment formats: ONNX (float32, and int8 QDQ for ONNX Runtime) — see docs/export.md."""

from __future__ import annotations

from pqcompress.export.onnx import (
    ExportError,
    OrtModel,
    coded_tensors,
    export_onnx,
    load_onnx,
    native_int8,
    weight_codes,
)

__all__ = [
    "ExportError",
    "OrtModel",
    "coded_tensors",
    "export_onnx",
    "load_onnx",
    "native_int8",
    "weight_codes",
]
