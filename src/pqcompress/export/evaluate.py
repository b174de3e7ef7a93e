"""``evaluate_path``: the classification report of a .pqz or .onnx file on a dataset split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pqcompress.data.batches import split_loader
from pqcompress.errors import ConfigError


def _load_for_eval(path: Path, model: str | None = None) -> tuple[Any, dict[str, Any]]:
    if path.suffix == ".onnx":
        from pqcompress.export import load_onnx

        return load_onnx(path), {}
    from pqcompress.codec.sources import load_model

    loaded, manifest = load_model(path, model=model)
    return loaded, manifest


def evaluate_path(
    path: str | Path,
    dataset: str,
    *,
    split: str = "test",
    root: str | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    model: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Classification report of a .pqz/.onnx model on a split, plus timing and model info;
    ``model`` is the ``package.module:factory`` of a file saved from a user's own model,
    ``options`` the dataset's own (a run's ``data.options``)."""
    from pqcompress.metrics.classification import classification_report, evaluate_model

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"'{path}' does not exist")
    start = time.perf_counter()
    model, manifest = _load_for_eval(path, model)
    load_s = time.perf_counter() - start
    loader, bundle = split_loader(
        dataset, split, root=root, batch_size=batch_size, limit=limit, options=options
    )
    start = time.perf_counter()
    res = evaluate_model(model, loader, "cpu", return_predictions=True)
    eval_s = time.perf_counter() - start
    report = classification_report(
        res["predictions"], res["labels"], bundle.num_classes, bundle.class_names
    )
    report.update(
        model=str(path),
        dataset=dataset,
        split=split,
        n=res["n"],
        loss=res["loss"],
        load_s=load_s,
        eval_s=eval_s,
        file_bytes=path.stat().st_size,
    )
    if manifest:
        report["model_name"] = (manifest.get("model") or {}).get("name")
    return report
