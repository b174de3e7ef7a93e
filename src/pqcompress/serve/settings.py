"""Typed service settings: a frozen pydantic-settings model read from flags and ``PQC_*``
environment variables; every refusal is one ConfigError naming the setting and what it accepts."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pqcompress.errors import ConfigError
from pqcompress.serve.choices import (
    LogLevel,
    OrtWeights,
    Runtime,
)

ENV_PREFIX = "PQC_"


def _auto(value: Any) -> Any:
    """``auto`` / ``none`` (any case) mean None for the settings that have an automatic value."""
    if isinstance(value, str) and value.strip().lower() in ("auto", "none"):
        return None
    return value


Auto = BeforeValidator(_auto)
MiB = 1 << 20
CountOrAuto = Annotated[Annotated[int, Field(ge=1)] | None, Auto]
BytesOrAuto = Annotated[Annotated[int, Field(ge=MiB)] | None, Auto]


class ServeSettings(BaseSettings):
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

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    model: str = Field(min_length=1)
    runtime: Runtime = "onnxruntime"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)
    inference_threads: CountOrAuto = None
    int8: Annotated[bool | None, Auto] = None
    max_body_bytes: int = Field(8 * MiB, ge=1)
    max_batch: int = Field(64, ge=1)
    max_dim: int = Field(4096, ge=1)
    request_timeout_s: float = Field(30.0, gt=0)
    max_in_flight: int = Field(32, ge=1)
    retry_after_s: int = Field(1, ge=0)
    drain_timeout_s: float = Field(30.0, gt=0)
    header_timeout_s: float = Field(10.0, gt=0)
    keep_alive_s: float = Field(5.0, gt=0)
    log_level: LogLevel = "info"
    access_log: bool = False
    debug: bool = False
    debug_delay_s: float = Field(0.0, ge=0)
    ort_weights: OrtWeights = "external"
    body_timeout_s: float = Field(5.0, gt=0)
    min_body_rate: int = Field(64 * 1024, ge=1)
    memory_limit_bytes: BytesOrAuto = None
    request_memory_bytes: BytesOrAuto = None
    factory: str | None = None

    def __init__(self, _env_names: Collection[str] = (), **values: Any) -> None:
        """The given values, the others from ``PQC_*`` variables of the process environment
        (pydantic-settings), then the defaults; a refused value is one ConfigError."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            from_process = {
                name
                for name in type(self).model_fields
                if os.environ.get(ENV_PREFIX + name.upper()) and name not in values
            }
            raise _config_error(exc, set(_env_names) | from_process) from None

    @model_validator(mode="after")
    def _int8_needs_onnxruntime(self) -> ServeSettings:
        if self.int8 and self.runtime == "torch":
            raise ValueError(
                "int8=true (--int8) needs runtime onnxruntime: the torch runtime serves the "
                "decoded float weights; use --runtime onnxruntime for int8 kernels"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Settings from ``PQC_*`` variables of ``env`` (default: the process environment,
        read by pydantic-settings); non-None ``overrides`` (command-line flags) win over the
        environment."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if env is None:  # pydantic-settings reads the PQC_* variables itself
            if "model" not in given and not os.environ.get(ENV_PREFIX + "MODEL"):
                raise ConfigError("no model: pass MODEL (a .pqz or .onnx file) or set PQC_MODEL")
            return cls(**given)
        from_env = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in env.items()
            if key.startswith(ENV_PREFIX)
            and key[len(ENV_PREFIX) :].lower() in cls.model_fields
            and value != ""
        }
        values = {**from_env, **given}
        if "model" not in values:
            raise ConfigError("no model: pass MODEL (a .pqz or .onnx file) or set PQC_MODEL")
        return cls(_env_names=set(from_env) - set(given), **values)

    def to_env(self) -> dict[str, str]:
        """``PQC_*`` variables that :meth:`from_env` turns back into these settings."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            out[ENV_PREFIX + name.upper()] = (
                ("1" if value else "0") if isinstance(value, bool) else str(value)
            )
        return out


_KINDS = {"int_parsing": "int", "float_parsing": "float", "bool_parsing": "bool"}


def _config_error(exc: ValidationError, env_names: set[str]) -> ConfigError:
    """One line for the first refused setting: its name (``PQC_<NAME>`` when the value came
    from the environment), the value, and what is accepted."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    value, kind, ctx = err.get("input"), err["type"], err.get("ctx") or {}
    field = ServeSettings.model_fields.get(name)
    optional = field is not None and type(None) in get_args(field.annotation)
    auto = " or auto" if optional else ""
    if kind == "missing" and name == "model":
        return ConfigError("no model: pass MODEL (a .pqz or .onnx file) or set PQC_MODEL")
    if kind == "string_too_short" and name == "model":
        return ConfigError("model: a .pqz or .onnx path is required")
    if kind in _KINDS:
        key = ENV_PREFIX + name.upper() if name in env_names else name
        return ConfigError(f"{key}={value!r} is not a valid {_KINDS[kind]} for '{name}'{auto}")
    if kind == "literal_error" and field is not None:
        accepted = ", ".join(str(a) for a in get_args(field.annotation))
        return ConfigError(f"{name}={value!r} is not accepted; use {accepted}")
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        shown = f"{limit:g}" if isinstance(limit, float) else limit
        return ConfigError(f"{name}={value} must be {bounds[kind]} {shown}{auto}")
    if kind == "extra_forbidden":
        return ConfigError(f"unknown serve setting '{name}'")
    return ConfigError(str(err["msg"]).removeprefix("Value error, "))
