"""The values some service settings accept, as types and tuples: the one home the settings
model and the command line's choices both read (this module imports no pydantic, so the CLI
starts without it)."""

from __future__ import annotations

from typing import Literal, get_args

Runtime = Literal["onnxruntime", "torch"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
OrtWeights = Literal["external", "embedded"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
ORT_WEIGHTS: tuple[str, ...] = get_args(OrtWeights)
