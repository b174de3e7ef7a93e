"""Typed service settings: a frozen dataclass read from flags and ``PQC_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pqcompress.errors import ConfigError

RUNTIMES = ("onnxruntime", "torch")
ORT_WEIGHTS = ("external", "embedded")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
ENV_PREFIX = "PQC_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``pqcompress serve`` needs; env var ``PQC_<FIELD>`` sets ``<field>``.

    ``int8``: None = int8 kernels when the model's form allows it (uniform at <= 8 bits),
    True = require them, False = float graph. ``max_in_flight`` bounds concurrent
    /v1/predict requests (more get 503 + Retry-After). ``debug`` adds /debug/runtime and
    ``debug_delay_s`` sleeps in every prediction: both for tests only. ``threads`` is the
    intra-op thread count of one inference; ``inference_threads`` how many inferences run at
    once (None = the CPUs the process may use: affinity and cgroup quota, ``pqcompress.cpus``).

    Slow bodies: a request body must arrive within ``body_timeout_s`` plus one second per
    ``min_body_rate`` bytes received, else 408. Memory: the bytes requests hold at once (bodies
    and their decoding) come from one budget, ``request_memory_bytes`` (None = derived from
    ``memory_limit_bytes``, else the cgroup's memory limit: ``pqcompress.serve.budget``).
    """

    model: str
    runtime: str = "onnxruntime"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 1
    inference_threads: int | None = None
    int8: bool | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 64
    max_dim: int = 4096
    request_timeout_s: float = 30.0
    max_in_flight: int = 32
    retry_after_s: int = 1
    drain_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    log_level: str = "info"
    access_log: bool = False
    debug: bool = False
    debug_delay_s: float = 0.0
    ort_weights: str = "external"
    body_timeout_s: float = 5.0
    min_body_rate: int = 64 * 1024
    memory_limit_bytes: int | None = None
    request_memory_bytes: int | None = None
    factory: str | None = None

    def __post_init__(self) -> None:
        if self.ort_weights not in ORT_WEIGHTS:
            raise ConfigError(
                f"ort_weights={self.ort_weights!r} is not accepted; use {', '.join(ORT_WEIGHTS)}"
            )
        if not str(self.model):
            raise ConfigError("model: a .pqz or .onnx path is required")
        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"runtime={self.runtime!r} is not accepted; use {', '.join(RUNTIMES)}"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"log_level={self.log_level!r} is not accepted; use {', '.join(LOG_LEVELS)}"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port={self.port} is not in 0..65535")
        for name in (
            "workers",
            "threads",
            "max_body_bytes",
            "max_batch",
            "max_dim",
            "max_in_flight",
            "min_body_rate",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.int8 and self.runtime == "torch":
            raise ConfigError(
                "int8=true (--int8) needs runtime onnxruntime: the torch runtime serves the "
                "decoded float weights; use --runtime onnxruntime for int8 kernels"
            )
        if self.inference_threads is not None and self.inference_threads < 1:
            raise ConfigError(f"inference_threads={self.inference_threads} must be >= 1 or auto")
        for name in ("memory_limit_bytes", "request_memory_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1 << 20:
                raise ConfigError(f"{name}={value} must be at least 1 MiB (1048576) or auto")
        for name in (
            "request_timeout_s",
            "drain_timeout_s",
            "header_timeout_s",
            "keep_alive_s",
            "body_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be > 0")
        if self.retry_after_s < 0 or self.debug_delay_s < 0:
            raise ConfigError("retry_after_s and debug_delay_s must be >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Settings from ``PQC_*`` variables of ``env`` (default os.environ); non-None
        ``overrides`` (command-line flags) win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env and env[key] != "":
                values[f.name] = _parse(f.name, str(f.type), env[key], key)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown serve settings: {', '.join(sorted(unknown))}")
        if "model" not in values:
            raise ConfigError("no model: pass MODEL (a .pqz or .onnx file) or set PQC_MODEL")
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """``PQC_*`` variables that :meth:`from_env` turns back into these settings."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[ENV_PREFIX + f.name.upper()] = (
                ("1" if value else "0") if isinstance(value, bool) else str(value)
            )
        return out


def _parse(name: str, kind: str, raw: str, key: str) -> Any:
    text = raw.strip()
    try:
        if "bool" in kind:
            low = text.lower()
            if "None" in kind and low in ("auto", "none"):
                return None
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if "int" in kind and "None" in kind and text.lower() in ("auto", "none"):
            return None
        if kind.startswith("int"):
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a valid {kind} for '{name}'") from None
    return text
