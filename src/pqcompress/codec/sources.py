"""Loading a model to compress after training (.pqz file, run directory or checkpoint) and
saving the result as .pqz, keeping integer codes where the values are still on their grid."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pqcompress.errors import CheckpointError
from pqcompress.models.factory import is_factory_path
from pqcompress.ops.pq import PQResult, codes_from_values


def load_model(
    source: str | Path, *, which: str = "best", model: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, .pqz manifest) from a .pqz file, a run directory or a checkpoint.

    A run or checkpoint is exported to a temporary .pqz first
    (:func:`pqcompress.codec.export_run`), so all sources give the same manifest. ``model``
    is the ``package.module:factory`` of a .pqz saved from a user's own model (a run directory
    names its own factory in its config, which the user wrote).
    """
    from pqcompress import codec

    src = Path(source)
    if not src.exists():
        raise CheckpointError(f"'{src}' does not exist")
    from pqcompress.codec.portable import read_manifest

    if src.is_file() and src.suffix == ".pqz":  # the manifest alone, then one decode
        return codec.load(src, model=model), read_manifest(src)
    with tempfile.TemporaryDirectory(prefix="pqc-posttrain-") as tmp:
        pqz = codec.export_run(src, Path(tmp) / "model.pqz", which=which)
        manifest = read_manifest(pqz)
        return codec.load(pqz, model=model or run_factory(manifest)), manifest


def run_factory(manifest: dict[str, Any]) -> str | None:
    """The ``package.module:factory`` a .pqz exported from a run names (the run's own config,
    written by the user who trained it), or None for a registry model."""
    name = (manifest.get("model") or {}).get("name")
    return name if isinstance(name, str) and is_factory_path(name) else None


class ManifestCodes:
    """A compressor stand-in for :func:`pqcompress.codec.save`: the tensors a manifest stored
    as codes, with their codes recomputed from the model's current values (pruning sets
    entries to 0, which is code 0 on every grid). Tensors no longer on their grid (e.g. after
    float16) are left out and stored as values."""

    def __init__(self, model: nn.Module, manifest: dict[str, Any]) -> None:
        self.state = model.state_dict()
        self.results: dict[str, PQResult] = {}
        for e in manifest.get("tensors", []):
            name = e["name"]
            if e.get("encoding") != "codes" or name not in self.state:
                continue
            values = self.state[name].detach().float()
            try:
                codes = codes_from_values(
                    values, e["kind"], int(e["bits"]), float(e["scale"]), float(e["threshold"])
                )
            except ValueError:
                continue
            self.results[name] = PQResult(
                values, codes, e["kind"], int(e["bits"]), float(e["scale"]), float(e["threshold"])
            )

    def names(self) -> list[str]:
        return list(self.results)

    def compressed(self, name: str) -> PQResult:
        return self.results[name]


def save_pqz(
    model: nn.Module,
    path: str | Path,
    manifest: dict[str, Any] | None = None,
    *,
    float_dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a (pruned) float model as .pqz with the source manifest's model record, so that
    :func:`pqcompress.codec.load` rebuilds it; coded tensors keep their codes."""
    from pqcompress import codec

    manifest = manifest or {}
    spec = manifest.get("model") or {}
    name = spec.get("name")
    comp = ManifestCodes(model, manifest) if manifest else None
    if comp is not None and not comp.names():
        comp = None
    meta = dict(manifest.get("metadata") or {})
    meta.update(metadata or {})
    with torch.no_grad():
        return codec.save(
            model,
            path,
            comp,
            float_dtype=float_dtype,
            model_name=name if name != "custom" else None,
            model_args=spec.get("model_args"),
            num_classes=spec.get("num_classes"),
            input_shape=spec.get("input_shape"),
            preprocessing=manifest.get("preprocessing"),
            class_names=manifest.get("class_names"),
            metadata=meta,
        )
