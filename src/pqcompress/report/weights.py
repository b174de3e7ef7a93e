"""One layer's weights before and after compression, for the weight histogram."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pqcompress.report.errors import PlotSkipped, ReportError
from pqcompress.report.store import Run


@dataclass(frozen=True)
class LayerWeights:
    """Float weights (``before``) and the decoded compressed ones (``after``) of one layer."""

    layer: str
    run: Run
    before: np.ndarray
    after: np.ndarray
    before_source: str
    kind: str
    bits: int | None


def _compressed_entries(manifest: dict) -> list[dict]:
    return [e for e in manifest.get("tensors", []) if e.get("kind", "none") != "none"]


def _numel(entry: dict) -> int:
    return int(np.prod(entry.get("shape") or [1]))


def _checkpoint_tensors(path: Path) -> dict | None:
    from pqcompress.checkpoint import load_checkpoint
    from pqcompress.errors import CheckpointError

    if not path.is_file():
        return None
    try:
        return load_checkpoint(path)
    except CheckpointError:
        return None


def _before(run: Run, layer: str, shape: tuple[int, ...], baseline: Run | None):
    """(float weights, where they come from), or None when no float copy is stored."""
    if run.run_dir:
        ckpt = _checkpoint_tensors(Path(run.run_dir) / "checkpoint.pt")
        comp = (ckpt or {}).get("compressor") or {}
        residual = (comp.get("residuals") or {}).get(layer)
        if ckpt is not None and residual is not None and layer in ckpt.get("model", {}):
            w = ckpt["model"][layer].float() + residual.float()
            return w.numpy().ravel(), "the run's float latent weights (last epoch, checkpoint.pt)"
    if baseline is not None and baseline.run_dir:
        for name in ("best.pt", "checkpoint.pt"):
            ckpt = _checkpoint_tensors(Path(baseline.run_dir) / name)
            w = (ckpt or {}).get("model", {}).get(layer)
            if w is not None and tuple(w.shape) == shape:
                return (
                    w.float().numpy().ravel(),
                    f"the uncompressed baseline run {baseline.run_id[:12]} ({name})",
                )
    return None


def layer_weights(run: Run, layer: str | None, baseline: Run | None) -> LayerWeights:
    """Decode ``layer`` (default: the largest compressed tensor) from the run's .pqz file.

    "Before" is the run's own float latent weights when it trained with ``update="latent"``
    (checkpoint.pt keeps them), else the same layer of the uncompressed baseline run.
    PlotSkipped when a file is missing; ReportError when ``layer`` names no compressed tensor.
    """
    from pqcompress.codec import read
    from pqcompress.codec.errors import FormatError

    if not run.pqz_path or not Path(run.pqz_path).is_file():
        raise PlotSkipped(
            f"weight histogram: run {run.run_id[:12]} ({run.label()}) has no .pqz file "
            f"({run.pqz_path or 'none recorded'})"
        )
    try:
        manifest, tensors = read(run.pqz_path)
    except FormatError as exc:
        raise PlotSkipped(f"weight histogram: cannot read {run.pqz_path}: {exc}") from None
    entries = _compressed_entries(manifest)
    if layer is None:
        if not entries:
            raise PlotSkipped(f"weight histogram: {run.pqz_path} holds no compressed tensor")
        entry = max(entries, key=_numel)
    else:
        entry = next((e for e in entries if e["name"] == layer), None)
        if entry is None:
            names = ", ".join(e["name"] for e in entries) or "none"
            raise ReportError(
                f"layer '{layer}' is not a compressed tensor of {run.pqz_path}; "
                f"compressed tensors: {names}"
            )
    name = entry["name"]
    after = tensors[name].float().numpy().ravel()
    found = _before(run, name, tuple(entry["shape"]), baseline)
    if found is None:
        raise PlotSkipped(
            f"weight histogram: no float weights of '{name}' to compare with (run "
            f"{run.run_id[:12]} trained in place and no uncompressed baseline run has them)"
        )
    before, source = found
    return LayerWeights(name, run, before, after, source, entry.get("kind", "?"), entry.get("bits"))
