"""``pqcompress export`` (a run to a .pqz file) and ``pqcompress inspect`` (a .pqz file's sizes)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from pqcompress.cli.options import add_factory, add_output

LAYOUTS = ("auto", "dense", "bitmap", "csr", "csc")
CODECS = ("auto", "deflate", "zstd", "lzma", "raw")
FORMATS = ("pqz", "onnx")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's best (or last) model as a compressed .pqz file",
        description="Export RUN_DIR (its best.pt or checkpoint.pt) or one checkpoint file "
        "to a .pqz file: compressed tensors as bit-packed integer codes, the rest as float32.",
    )
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    add_output(
        p,
        dest="output",
        required=True,
        metavar="FILE",
        help="the file to write: its extension decides the format (.pqz or .onnx)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="pqz: compressed codes; onnx: a graph for ONNX Runtime (docs/export.md); by "
        "default the output's extension decides",
    )
    p.add_argument("--int8", action="store_true", help="onnx: static int8 QDQ graph")
    p.add_argument(
        "--onnx",
        choices=("auto", "none", "float32", "all"),
        default="auto",
        help="pqz: ONNX graphs to embed for serving without torch (default auto: float32, plus "
        "int8 when every compressed tensor is uniform/quantize <= 8 bits and the run's dataset "
        "can be loaded for calibration; all: both, none: weights only)",
    )
    p.add_argument(
        "--calibration-dataset",
        default=None,
        help="onnx --int8: calibration data (pqz: defaults to the run's dataset)",
    )
    p.add_argument("--data-root", default=None, help="the calibration dataset's files")
    p.add_argument("--calibration-batches", type=int, default=8)
    p.add_argument(
        "--opset",
        type=int,
        default=17,
        help="ONNX opset (of --format onnx, and of embedded graphs)",
    )
    p.add_argument(
        "--integrity",
        choices=("auto", "sections", "payload"),
        default="auto",
        help="checksums: auto (one for the whole payload up to 1 MiB, format 3), sections "
        "(one per section, formats 1/2, read by older pqcompress), payload",
    )
    p.add_argument(
        "--shrink",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="remove the pruned channels of a granularity: channel run (a smaller, faster "
        "model; needs the channels extra: Torch-Pruning). Default: such runs are shrunk, "
        "others are not",
    )
    p.add_argument("--layout", choices=LAYOUTS, default="auto")
    p.add_argument("--codec", choices=CODECS, default="auto")
    p.add_argument("--which", choices=("best", "last", "post"), default="best")
    p.add_argument("--float16", action="store_true", help="store float tensors as float16 (lossy)")
    p.add_argument("--num-classes", type=int, default=None, help="for runs that lack it")
    p.add_argument("--input-shape", type=int, nargs="+", default=None, help="for runs that lack it")
    add_factory(
        p,
        help="--format onnx of a .pqz saved from your own model: its factory",
    )
    p.set_defaults(func=_export)
    p = sub.add_parser("inspect", help="per-tensor sizes, layouts and codecs of a .pqz file")
    p.add_argument("path", metavar="MODEL.pqz")
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the studies' baseline and entropy bound (they decode the whole file)",
    )
    p.set_defaults(func=_inspect)


def output_format(output: str, asked: str | None) -> str:
    """The one rule for an output's format: its extension (.pqz or .onnx) decides; an explicit
    --format must agree with it; anything else is refused in one line."""
    from pathlib import Path

    from pqcompress.errors import ConfigError

    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ConfigError(
            f"-o {output}: the extension decides the format; use a .pqz or .onnx file name"
        )
    if asked is not None and asked != suffix:
        raise ConfigError(
            f"--format {asked} but -o {output} is a .{suffix} file; name the file .{asked} "
            "(or drop --format)"
        )
    return suffix


def _export(args: argparse.Namespace) -> int:
    from pqcompress.codec import export_run

    args.format = output_format(args.output, getattr(args, "format", None))
    if args.format == "onnx":
        return _export_onnx(args)
    if getattr(args, "int8", False):
        from pqcompress.errors import ConfigError

        raise ConfigError("--int8 applies to --format onnx only")

    calibration = None
    if args.calibration_dataset and args.onnx in ("auto", "all"):
        from pqcompress.data.batches import calibration_batches

        calibration = calibration_batches(
            args.calibration_dataset, root=args.data_root, batches=args.calibration_batches
        )
    path = export_run(
        args.source,
        args.output,
        which=args.which,
        layout=args.layout,
        codec=args.codec,
        float_dtype="float16" if args.float16 else "float32",
        num_classes=args.num_classes,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        onnx=args.onnx,
        calibration=calibration,
        calibration_batches=args.calibration_batches,
        data_root=args.data_root,
        opset=args.opset,
        integrity=args.integrity,
        shrink=args.shrink,
    )
    from pqcompress.codec.portable import model_info

    info = model_info(path)
    graphs = ", ".join(f"{g['name']} ({g['stored_bytes']:,} bytes)" for g in info["graphs"])
    unshrunk = info.get("ratio_unshrunk_float32")
    versus = (
        f"{unshrunk:.2f}x smaller than the unshrunk float32 dense model "
        f"({info['ratio_float32']:.2f}x than its own)"
        if unshrunk
        else f"{info['ratio_float32']:.2f}x smaller than float32 dense"
    )
    print(
        f"wrote {path}: {info['file_bytes']:,} bytes, {versus}; embedded ONNX graphs: "
        f"{graphs or 'none'}"
    )
    shrunk = info.get("shrunk")
    if shrunk:
        print(
            f"shrunk: {shrunk['params_before']:,} -> {shrunk['params_after']:,} parameters, "
            f"{shrunk['macs_before'] / 1e6:.1f} -> {shrunk['macs_after'] / 1e6:.1f} M MACs "
            "per sample"
        )
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from pqcompress.codec.portable import read_manifest
    from pqcompress.codec.sources import load_model, run_factory
    from pqcompress.errors import ConfigError
    from pqcompress.export import export_onnx

    src = Path(args.source)
    if args.int8 and not args.calibration_dataset:  # like the .pqz export: the run's dataset
        args.calibration_dataset = _run_dataset(src)
        if not args.calibration_dataset:
            raise ConfigError(
                f"--int8: {src} does not name its dataset; pass --calibration-dataset NAME"
            )
    with tempfile.TemporaryDirectory(prefix="pqc-export-") as tmp:
        if src.is_file() and src.suffix == ".pqz":
            model, manifest = load_model(src, model=args.factory)
        else:
            from pqcompress.codec import export_run

            pqz = export_run(
                src,
                Path(tmp) / "model.pqz",
                which=args.which,
                num_classes=args.num_classes,
                input_shape=tuple(args.input_shape) if args.input_shape else None,
            )
            pqz_manifest = read_manifest(pqz)  # the user's own run names its factory
            model, manifest = load_model(pqz, model=args.factory or run_factory(pqz_manifest))
    record = manifest.get("model") or {}
    inputs = record.get("inputs")  # token ids, masks, several inputs: the file's own spec
    shape = None if inputs else tuple(int(d) for d in record.get("input_shape") or ())
    calib = None
    if args.int8:
        from pqcompress.data.batches import calibration_batches

        same = _run_dataset(src) == args.calibration_dataset
        calib = calibration_batches(
            args.calibration_dataset,
            root=args.data_root,
            batches=args.calibration_batches,
            options=_run_data_options(src) if same else None,
        )
    path = export_onnx(
        model,
        args.output,
        input_shape=shape,
        inputs=inputs,
        int8=args.int8,
        calibration=calib,
        opset=args.opset,
        compressed=manifest,
    )
    kind = "int8 QDQ" if args.int8 else "float32"
    print(f"wrote {path}: {kind} ONNX graph, {path.stat().st_size:,} bytes")
    return 0


def _run_data_options(source: Any) -> dict[str, Any]:
    """The data options a run directory was trained with (its dataset's own settings)."""
    from pathlib import Path

    from pqcompress.checkpoint import read_run_config

    root = Path(source)
    config = read_run_config(root if root.is_dir() else root.parent) or {}
    options = (config.get("data") or {}).get("options")
    return dict(options) if isinstance(options, dict) else {}


def _run_dataset(source: Any) -> str | None:
    """The dataset a run directory (or a checkpoint's directory) was trained on, if recorded."""
    from pathlib import Path

    from pqcompress.checkpoint import read_run_config

    root = Path(source)
    root = root if root.is_dir() else root.parent
    config = read_run_config(root) or {}
    name = config.get("dataset")
    return str(name) if name else None


def _inspect(args: argparse.Namespace) -> int:
    from rich.table import Table

    from pqcompress.cli.console import make_console
    from pqcompress.codec import inspect

    report = inspect(args.path, baseline=not args.no_baseline)
    console = make_console()
    table = Table(title=f"{args.path} ({_model(report['model'])})")
    cols = ("tensor", "shape", "form", "bits", "sparsity", "layout", "codec", "bytes")
    for col in cols:
        table.add_column(col, justify="right" if col in ("bits", "sparsity", "bytes") else "left")
    for r in report["tensors"]:
        table.add_row(
            r["name"],
            "x".join(str(d) for d in r["shape"]) or "scalar",
            r["kind"],
            "-" if r["bits"] is None else str(r["bits"]),
            f"{100 * r['sparsity']:.2f}%",
            r["layout"],
            r["codec"],
            f"{r['stored_bytes']:,}",
        )
    console.print(table)
    t = report["totals"]
    lines = [
        f"file {t['file_bytes']:,} bytes; {t['params']:,} elements"
        + (f", {100 * (1 - t['nnz'] / t['params']):.2f}% zeros" if t["params"] else "")
        + ("; LOSSY (float16 tensors)" if t["lossy"] else ""),
        f"float32 dense: {t['float32_bytes']:,} bytes -> {t['ratio_float32']:.2f}x smaller",
        "embedded ONNX graphs: "
        + (", ".join(f"{k} ({v:,} bytes)" for k, v in t["graphs"].items()) or "none"),
    ]
    shrunk = (report.get("model") or {}).get("shrunk")
    if isinstance(shrunk, dict):
        before, after = shrunk["params_before"], shrunk["params_after"]
        dense = t.get("unshrunk_float32_bytes") or 4 * before
        lines.append(
            f"shrunk to its kept channels: {before:,} -> {after:,} parameters, "
            f"{shrunk['macs_before'] / 1e6:.2f} -> {shrunk['macs_after'] / 1e6:.2f} M MACs per "
            f"sample; the unshrunk model's float32 dense {dense:,} bytes -> "
            f"{dense / t['file_bytes']:.2f}x smaller"
        )
    if "studies_bytes" in t:
        lines.append(
            f"studies' dense int8 + Deflate: {t['studies_bytes']:,} bytes -> "
            f"{t['ratio_studies']:.2f}x smaller"
        )
        ratio = t.get("ratio_to_bound")
        if isinstance(ratio, (int, float)) and math.isfinite(ratio):
            lines.append(
                f"order-0 entropy bound of the stored symbols: {t['entropy_bound_bytes']:,.0f} "
                f"bytes (file = {ratio:.3f}x the bound)"
            )
        else:  # no integer codes stored (a float model): there is no bound to compare with
            lines.append("order-0 entropy bound: none (the file stores no integer codes)")
    for line in lines:
        console.print(line)
    return 0


def _model(spec: Any) -> str:
    if not isinstance(spec, dict):
        return "unknown model"
    return str(spec.get("name", "custom"))
