"""``export_run``: a training run's best or last model, as integer codes, into a .pqz file."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pqcompress.codec.entries import runs_on_int8
from pqcompress.errors import CheckpointError, ConfigError, PQCError

WHICH = {"best": "best.pt", "last": "checkpoint.pt", "post": "post.pt"}


def export_run(
    run_dir_or_checkpoint: str | Path,
    out_path: str | Path,
    *,
    which: str = "best",
    layout: str = "auto",
    codec: str = "auto",
    float_dtype: str = "float32",
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    onnx: str = "auto",
    calibration: Iterable[Any] | None = None,
    calibration_batches: int = 8,
    data_root: str | None = None,
    opset: int = 17,
    integrity: str = "auto",
    shrink: bool | None = None,
) -> Path:
    """Export a run directory (``which``: best.pt, checkpoint.pt or post.pt) or one checkpoint.

    A run trained with ``schedule: post`` is compressed once after its last epoch; its
    ``post.pt`` is what the run produced, so ``which="best"`` exports that file there.

    Reads the experiment config (from the checkpoint, else config.yaml beside it), rebuilds
    the model from the registry, loads the weights with ``torch.load(weights_only=True)``,
    rebuilds the Compressor with the run's compression settings and restores its latest
    parameters, then :func:`pqcompress.codec.save` stores the compressed tensors as codes.
    ``num_classes``/``input_shape`` are read from the checkpoint (runs from older versions
    lack them: pass them here).

    ``onnx`` (default ``"auto"``) embeds ONNX graphs as :func:`pqcompress.codec.save` does.
    The int8 graph needs calibration batches: ``calibration`` if given, else
    ``calibration_batches`` batches of the run's training set (``data_root`` overrides the
    run's data root). With ``"auto"`` the int8 graph is embedded only when every compressed
    tensor is uniform/quantize codes of <= 8 bits, and a dataset that cannot be loaded means
    the float32 graph only (with a warning). ``opset`` is the embedded graphs' ONNX opset;
    ``integrity`` and ``shrink`` (remove the channels a ``granularity: channel`` run
    pruned) as in :func:`pqcompress.codec.save`; ``shrink=None`` (default) shrinks exactly the
    runs trained with channel granularity.
    """
    from pqcompress.codec.writer import save

    src = Path(run_dir_or_checkpoint)
    if which not in WHICH:
        raise ConfigError(f"which={which!r} is not accepted; use 'best', 'last' or 'post'")
    if src.is_dir() and which == "best" and _is_post_run(src):
        which = "post"
    ckpt_path = src / WHICH[which] if src.is_dir() else src
    ckpt, cfg, cfg_dict = _read_checkpoint(ckpt_path)
    model, shape, num_classes = _rebuild_model(ckpt, cfg, ckpt_path, num_classes, input_shape)
    compressor = _rebuild_compressor(model, ckpt, cfg, ckpt_path)
    if onnx in ("auto", "all") and calibration is None and _wants_int8(onnx, compressor):
        calibration = _run_calibration(cfg, data_root, calibration_batches, required=onnx == "all")
    if shrink is None:
        shrink = cfg.compression is not None and cfg.compression.granularity == "channel"
    meta: dict[str, Any] = {
        "source": str(ckpt_path),
        "epoch": ckpt.get("epoch"),
        "export": {"onnx": onnx, "float_dtype": float_dtype},
    }
    if cfg.compression is not None:
        meta["compression"] = cfg_dict.get("compression")
    return save(
        model,
        out_path,
        compressor,
        layout=layout,
        codec=codec,
        float_dtype=float_dtype,
        model_name=cfg.model,
        model_args=cfg.model_args,
        num_classes=num_classes,
        input_shape=None if ckpt.get("inputs") else shape,
        inputs=ckpt.get("inputs"),
        preprocessing=ckpt.get("preprocessing"),
        class_names=ckpt.get("class_names"),
        metadata=meta,
        onnx=onnx,
        calibration=calibration,
        opset=opset,
        integrity=integrity,
        shrink=shrink,
    )


def export_best(run_dir: str | Path, pqz: str | Path, **options: Any) -> Path:
    """``run_dir``'s best epoch as ``pqz``: exported (``export_run(..., which="best",
    **options)``) unless ``pqz`` exists, is newer than ``best.pt`` and was exported with the
    same ``onnx`` and ``float_dtype`` (a file from before the settings were recorded counts
    as the same), so a rerun of a finished sweep point or study stage reuses its file. The
    one rule for "export again?"."""
    run_dir, pqz = Path(run_dir), Path(pqz)
    best = run_dir / "best.pt"
    fresh = pqz.is_file() and best.is_file() and pqz.stat().st_mtime >= best.stat().st_mtime
    if not (fresh and _exported_with(pqz) in (_export_key(options), "unrecorded")):
        pqz.parent.mkdir(parents=True, exist_ok=True)
        export_run(run_dir, pqz, which="best", **options)
    return pqz


def _export_key(options: dict[str, Any]) -> dict[str, Any]:
    """The options a file records (``metadata.export``), with export_run's defaults."""
    return {
        "onnx": options.get("onnx", "auto"),
        "float_dtype": options.get("float_dtype", "float32"),
    }


def _exported_with(pqz: Path) -> dict[str, Any] | str | None:
    """The export options ``pqz`` records; ``"unrecorded"`` for a file from before they were
    recorded (reused, as it was then); None for a file that cannot be read (export again)."""
    from pqcompress.codec.container import map_file, split_file

    try:
        manifest, _ = split_file(map_file(pqz), str(pqz))
    except (PQCError, OSError):
        return None
    recorded = (manifest.get("metadata") or {}).get("export")
    return _export_key(recorded) if isinstance(recorded, dict) else "unrecorded"


def _read_checkpoint(ckpt_path: Path) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(checkpoint, ExperimentConfig, its dict) from the checkpoint or the config.yaml beside it."""
    from pqcompress.checkpoint import load_checkpoint, read_run_config
    from pqcompress.config import ExperimentConfig

    if not ckpt_path.is_file():
        raise CheckpointError(f"'{ckpt_path}' does not exist; nothing to export")
    ckpt = load_checkpoint(ckpt_path)
    cfg_dict = ckpt.get("config") or read_run_config(ckpt_path.parent)
    if not cfg_dict:
        raise CheckpointError(f"no experiment config in '{ckpt_path}' or beside it (config.yaml)")
    return ckpt, ExperimentConfig.from_dict(cfg_dict), cfg_dict


def _rebuild_model(
    ckpt: dict[str, Any],
    cfg: Any,
    ckpt_path: Path,
    num_classes: int | None,
    input_shape: tuple[int, ...] | None,
) -> tuple[Any, tuple[int, ...], int]:
    """The registry model with the checkpoint's weights (strict), its input shape and classes."""
    from pqcompress.models.registry import build_model

    num_classes = num_classes if num_classes is not None else ckpt.get("num_classes")
    shape = input_shape if input_shape is not None else ckpt.get("input_shape")
    if num_classes is None or shape is None:
        raise CheckpointError(
            f"'{ckpt_path}' does not record num_classes/input_shape (written by an older "
            "pqcompress); pass num_classes= and input_shape= (CLI: --num-classes, --input-shape)"
        )
    shape = tuple(int(d) for d in shape)
    model = build_model(
        cfg.model, num_classes=int(num_classes), input_shape=shape, **cfg.model_args
    )
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"'{ckpt_path}' does not fit model {cfg.model}: {exc}") from None
    return model, shape, int(num_classes)


def _rebuild_compressor(model: Any, ckpt: dict[str, Any], cfg: Any, ckpt_path: Path) -> Any:
    """The run's Compressor with its latest parameters (None for an uncompressed run);
    CheckpointError when a compressed tensor was never applied (nothing to store as codes)."""
    from pqcompress.aware.compressor import Compressor
    from pqcompress.ops.fused import Applied

    if cfg.compression is None:
        return None
    compressor = Compressor(model, cfg.compression, announce=False)  # the run announced it
    if ckpt.get("compressor") is not None:
        _restore(compressor, ckpt["compressor"], ckpt_path)
    elif ckpt.get("compressor_applied") is not None:
        compressor.applied = {k: Applied(**v) for k, v in ckpt["compressor_applied"].items()}
    else:
        raise CheckpointError(
            f"'{ckpt_path}' holds no compressor parameters (written by an older pqcompress); "
            "export the last checkpoint instead (which='last', CLI: --which last)"
        )
    pending = [
        t.name
        for t in compressor.targets
        if t.spec.kind != "none" and t.name not in compressor.applied
    ]
    if pending:
        raise CheckpointError(
            f"the compressor was never applied to {pending[:3]} in '{ckpt_path}' "
            f"(schedule={cfg.compression.schedule!r}); nothing to store as codes"
        )
    return compressor


def _is_post_run(run_dir: Path) -> bool:
    """A run directory whose config compresses once after training (``schedule: post``)."""
    from pqcompress.checkpoint import read_run_config

    try:
        cfg = read_run_config(run_dir) or {}
    except PQCError:
        return False
    comp = cfg.get("compression")
    return isinstance(comp, dict) and comp.get("schedule") == "post"


def _wants_int8(onnx: str, compressor: Any) -> bool:
    if onnx == "all":
        return True
    if compressor is None:
        return False
    results = [compressor.compressed(n) for n in compressor.names()]
    compressed = [r for r in results if r.codes is not None or r.kind != "none"]
    return bool(compressed) and all(
        r.codes is not None and runs_on_int8(r.kind, r.bits) for r in compressed
    )


def _run_calibration(cfg: Any, root: str | None, batches: int, *, required: bool) -> Any:
    """A few training batches of the run's dataset, or None (with a warning) under "auto"."""
    from pqcompress.data.batches import calibration_batches

    try:
        return calibration_batches(
            cfg.dataset,
            root=root if root is not None else cfg.data.root,
            batches=batches,
            options=cfg.data.options,
        )
    except (PQCError, OSError) as exc:
        if required:
            raise
        warnings.warn(
            f"no int8 graph embedded: calibration data of '{cfg.dataset}' unavailable ({exc})",
            stacklevel=3,
        )
        return None


def _restore(compressor: Any, state: dict[str, Any], where: Path) -> None:
    try:
        compressor.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"compressor state in '{where}' is unusable: {exc}") from None
