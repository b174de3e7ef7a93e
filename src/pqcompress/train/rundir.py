"""The run directory's layout, the "already holds a run" guard and the resume config check."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pqcompress import dirlock
from pqcompress.atomic import write_json_atomic, write_text_atomic
from pqcompress.checkpoint import RUN_CONFIG, read_run_config
from pqcompress.config import ExperimentConfig, non_default_dict
from pqcompress.errors import CheckpointError, ConfigError

# Config keys that may differ between a checkpoint and the run that resumes it.
RESUMABLE_KEYS = frozenset({"train.epochs"})


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory.

    config.yaml    the experiment config (written at start, rewritten on resume)
    metrics.jsonl  one JSON line per finished epoch (keys: ``history.EPOCH_KEYS``)
    checkpoint.pt  everything needed to resume after the last finished epoch (with the
                   metrics lines up to it; written before that epoch's metrics line)
    .lock          held (flock) by the process writing the run; records who that is
    best.pt        ``{"epoch", "model", "config"}``: the model at the best (test) epoch
    post.pt        same layout, the model after post-training compression (schedule "post")
    result.json    ``RunResult.to_dict()``, written when the run ends (or is interrupted)
    """

    root: Path

    @property
    def config(self) -> Path:
        return self.root / RUN_CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    def holds_run(self) -> bool:
        """True when a checkpoint, a result or metrics lines from an earlier run are present."""
        has_metrics = self.metrics.is_file() and self.metrics.stat().st_size > 0
        return self.checkpoint.is_file() or self.result.is_file() or has_metrics

    def check_is_directory(self) -> None:
        """CheckpointError when the output path exists and is not a directory."""
        if self.root.exists() and not self.root.is_dir():
            raise CheckpointError(f"output path '{self.root}' exists and is not a directory")

    def check_can_start(self, resume: bool) -> None:
        """Raise CheckpointError when starting afresh would overwrite an earlier run."""
        self.check_is_directory()
        if not resume and self.holds_run():
            raise CheckpointError(
                f"run directory {self.root} already holds a run; pass resume=True (--resume) "
                "or choose another output directory"
            )

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the run directory's writer lock (``dirlock``; re-entrant in one process): a
        second writer gets BusyError naming this process."""
        return dirlock.locked(self.root, dirlock.RUN_LOCK, what="run directory")

    def write_config(self, config: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config, yaml.safe_dump(dict(config), sort_keys=False))

    def read_config(self) -> dict[str, Any] | None:
        return read_run_config(self.root)

    def write_result(self, result: Mapping[str, Any]) -> None:
        write_json_atomic(self.result, dict(result))

    def read_result(self) -> dict[str, Any] | None:
        if not self.result.is_file():
            return None
        try:
            return json.loads(self.result.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"'{self.result}' is not valid JSON: {exc}") from None


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        if not data and prefix:
            out[prefix] = {}
        return out
    if isinstance(data, tuple):
        data = list(data)
    return {prefix: data}


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ (``RESUMABLE_KEYS`` excluded), sorted."""
    a, b = _flatten(saved), _flatten(current)
    keys = (set(a) | set(b)) - RESUMABLE_KEYS
    diff = {k for k in keys if a.get(k, _MISSING) != b.get(k, _MISSING)}

    def under_other(key: str) -> bool:  # "compression.bits" when "compression" is null on one side
        parts = key.split(".")
        return any(".".join(parts[:i]) in diff for i in range(1, len(parts)))

    return sorted(k for k in diff if not under_other(k))


def with_current_defaults(saved: Mapping[str, Any]) -> Mapping[str, Any]:
    """A saved experiment config with the fields added since it was written at their
    defaults, so that a run started before a new field existed still resumes; anything that
    is not a parseable ExperimentConfig is returned as it is."""
    if not ("model" in saved and "train" in saved):
        return saved
    try:
        out: dict[str, Any] = ExperimentConfig.from_dict(saved).to_dict()
    except (ConfigError, TypeError):
        return saved
    return out


def _id_form(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The flattened run-id form of an experiment config (``config.non_default_dict``), or
    None when it is not one."""
    try:
        return _flatten(non_default_dict(ExperimentConfig.from_dict(config)))
    except (ConfigError, TypeError):
        return None


def check_same_config(saved: Mapping[str, Any], current: Mapping[str, Any], where: Path) -> None:
    """CheckpointError naming each differing key, with the saved and the current value (a
    field added since the run was saved counts at its default). A key whose value differs but
    that the run id does not see (a field with no effect in this config, or a changed default
    that the saved run held) does not count: the same run id resumes the same run."""
    saved = with_current_defaults(saved)
    diff = config_differences(saved, current)
    forms = (_id_form(saved), _id_form(current)) if diff else (None, None)
    if forms[0] is not None and forms[1] is not None:
        a, b = forms
        diff = [k for k in diff if a.get(k, _MISSING) != b.get(k, _MISSING)]
    if diff:
        details = "; ".join(
            f"{k}: saved {_lookup(saved, k)!r}, now {_lookup(current, k)!r}" for k in diff
        )
        raise CheckpointError(
            f"cannot resume {where}: the config differs from the saved run in {', '.join(diff)} "
            f"({details}); only train.epochs may change on resume"
        )


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return _MISSING
        data = data[part]
    return data


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


_MISSING = _Missing()
