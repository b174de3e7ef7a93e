"""``pqcompress evaluate`` (a .pqz or .onnx model on a dataset split) and ``pqcompress
posttrain`` (prune and/or quantize a trained model after training)."""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

from pqcompress.errors import ConfigError

QUANTIZE = ("none", "dynamic", "static", "fp16", "ort-int8")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy, precision, recall, F1 and confusion matrix of a .pqz or .onnx model",
        description="Evaluate MODEL (.pqz, or .onnx through ONNX Runtime) on a dataset split.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--dataset", required=True, help="registered dataset name (pqcompress datasets)")
    p.add_argument("--data-root", default=None, help="where the dataset's files are")
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument("--json", dest="json_path", default=None, help="also write the report here")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "posttrain",
        help="prune and/or quantize a trained model (.pqz, run directory or checkpoint)",
        description="Post-training compression. Writes .pqz for pruning-only and fp16 results, "
        ".onnx for ort-int8, and TorchScript .pt for torch dynamic/static int8.",
    )
    p.add_argument("source", metavar="MODEL")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--prune", choices=("none", "l1", "random", "std"), default="none")
    p.add_argument(
        "--amount", type=float, default=0.0, help="fraction to prune (alpha for --prune std)"
    )
    p.add_argument("--layers", choices=("linear", "conv", "both"), default="both")
    p.add_argument("--params", choices=("weights", "biases", "both"), default="weights")
    p.add_argument("--scope", choices=("layer", "global"), default="layer")
    p.add_argument("--seed", type=int, default=0, help="for --prune random")
    p.add_argument("--quantize", choices=QUANTIZE, default="none")
    p.add_argument(
        "--calibration-dataset", default=None, help="dataset for static / ort-int8 calibration"
    )
    p.add_argument("--data-root", default=None)
    p.add_argument("--calibration-batches", type=int, default=8)
    p.add_argument("--which", choices=("best", "last"), default="best", help="for run dirs")
    p.set_defaults(func=_posttrain)


def split_loader(
    dataset: str,
    split: str = "test",
    *,
    root: str | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    shuffle: bool = False,
) -> tuple[Any, Any]:
    """(loader, bundle) over one split of a registered dataset, without augmentation."""
    import torch
    from torch.utils.data import Subset

    from pqcompress.config import DataConfig
    from pqcompress.data import build_dataset, make_loader

    bundle = build_dataset(dataset, DataConfig(root=root, augment=False))
    data = getattr(bundle, split)
    if data is None:
        raise ConfigError(f"dataset {dataset!r} has no {split!r} split")
    if limit is not None:
        data = Subset(data, torch.arange(min(int(limit), len(data))).tolist())
    return make_loader(data, batch_size, shuffle=shuffle), bundle


def calibration_batches(
    dataset: str, *, root: str | None = None, batches: int = 8, batch_size: int = 64
) -> list:
    """A few shuffled training batches (inputs only) for activation calibration."""
    loader, _ = split_loader(dataset, "train", root=root, batch_size=batch_size, shuffle=True)
    out = []
    for x, _ in loader:
        out.append(x)
        if len(out) >= batches:
            break
    return out


def _load_for_eval(path: Path) -> tuple[Any, dict[str, Any]]:
    if path.suffix == ".onnx":
        from pqcompress.export import load_onnx

        return load_onnx(path), {}
    from pqcompress import codec

    manifest, _ = codec.read(path)
    return codec.load(path), manifest


def evaluate_path(
    path: str | Path,
    dataset: str,
    *,
    split: str = "test",
    root: str | None = None,
    batch_size: int = 256,
    limit: int | None = None,
) -> dict[str, Any]:
    """Classification report of a .pqz/.onnx model on a split, plus timing and model info."""
    from pqcompress.metrics.classification import classification_report, evaluate_model

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"'{path}' does not exist")
    start = time.perf_counter()
    model, manifest = _load_for_eval(path)
    load_s = time.perf_counter() - start
    loader, bundle = split_loader(dataset, split, root=root, batch_size=batch_size, limit=limit)
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


def _evaluate(args: argparse.Namespace) -> int:
    report = evaluate_path(
        args.model,
        args.dataset,
        split=args.split,
        root=args.data_root,
        batch_size=args.batch_size,
        limit=args.limit,
    )
    _print_report(report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    from pqcompress.cli.report import make_console

    console = make_console()
    console.print(
        f"{report['model']} on {report['dataset']}/{report['split']} ({report['n']:,} samples): "
        f"accuracy {100 * report['accuracy']:.2f}%, macro F1 {100 * report['macro_f1']:.2f}%, "
        f"loss {report['loss']:.4f}; load {report['load_s'] * 1e3:.1f} ms, "
        f"evaluation {report['eval_s']:.2f} s"
    )
    names = report.get("class_names") or [str(i) for i in range(len(report["precision"]))]
    table = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(names):
        table.add_row(
            str(name),
            f"{100 * report['precision'][i]:.2f}%",
            f"{100 * report['recall'][i]:.2f}%",
            f"{100 * report['f1'][i]:.2f}%",
            str(report["support"][i]),
        )
    table.add_row(
        "macro",
        f"{100 * report['macro_precision']:.2f}%",
        f"{100 * report['macro_recall']:.2f}%",
        f"{100 * report['macro_f1']:.2f}%",
        str(sum(report["support"])),
    )
    console.print(table)
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for name in names:
        cm.add_column(str(name), justify="right")
    for name, row in zip(names, report["confusion_matrix"]):
        cm.add_row(str(name), *[str(v) for v in row])
    console.print(cm)


def _posttrain(args: argparse.Namespace) -> int:
    import torch

    from pqcompress.posttrain import prune_l1, prune_random, prune_std, sparsity
    from pqcompress.posttrain.io import load_model, save_pqz

    out = Path(args.output)
    if args.prune != "none" and not args.amount >= 0:
        raise ConfigError("--amount must be >= 0")
    if args.prune == "none" and args.quantize == "none":
        raise ConfigError("nothing to do: pass --prune and/or --quantize")
    model, manifest = load_model(args.source, which=args.which)
    common = {"layers": args.layers, "params": args.params, "scope": args.scope}
    if args.prune == "l1":
        prune_l1(model, args.amount, **common)
    elif args.prune == "random":
        prune_random(model, args.amount, seed=args.seed, **common)
    elif args.prune == "std":
        prune_std(model, args.amount, **common)
    spec = manifest.get("model") or {}
    shape = tuple(int(d) for d in spec.get("input_shape") or ())
    meta = {
        "posttrain": {
            "source": str(args.source),
            "prune": args.prune,
            "amount": args.amount,
            "layers": args.layers,
            "params": args.params,
            "scope": args.scope,
            "quantize": args.quantize,
        }
    }
    q = args.quantize
    calib = None
    if q in ("static", "ort-int8"):
        if not args.calibration_dataset:
            raise ConfigError(f"--quantize {q} needs --calibration-dataset NAME")
        calib = calibration_batches(
            args.calibration_dataset, root=args.data_root, batches=args.calibration_batches
        )
    if q in ("none", "fp16"):
        if out.suffix != ".pqz":
            raise ConfigError(f"--quantize {q} writes a .pqz file; name the output *.pqz")
        path = save_pqz(
            model, out, manifest, float_dtype="float16" if q == "fp16" else "float32", metadata=meta
        )
        what = "float16 tensors" if q == "fp16" else "pruned float model"
    elif q == "ort-int8":
        from pqcompress.export import export_onnx

        if out.suffix != ".onnx":
            raise ConfigError("--quantize ort-int8 writes an ONNX file; name the output *.onnx")
        path = export_onnx(
            model, out, input_shape=shape, int8=True, calibration=calib, compressed=manifest
        )
        what = "ONNX int8 QDQ graph (ONNX Runtime)"
    else:
        from pqcompress.posttrain import quantize_dynamic_int8, quantize_static_int8

        if out.suffix != ".pt":
            raise ConfigError(f"--quantize {q} writes TorchScript; name the output *.pt")
        qm = quantize_dynamic_int8(model) if q == "dynamic" else quantize_static_int8(model, calib)
        example = torch.zeros((1, *shape))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated in recent torch
            scripted = torch.jit.trace(qm, example)
            torch.jit.save(scripted, str(out))
        path = out
        what = f"TorchScript torch {q} int8 model (load with torch.jit.load)"
    print(
        f"wrote {path} ({what}): {path.stat().st_size:,} bytes; "
        f"{100 * sparsity(model):.2f}% zeros in linear/conv tensors"
    )
    return 0
