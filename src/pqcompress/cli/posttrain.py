"""``pqcompress posttrain``: prune and/or quantize a trained model after training."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from pqcompress.cli.options import add_factory, add_output
from pqcompress.errors import ConfigError

QUANTIZE = ("none", "dynamic", "static", "fp16", "ort-int8")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "posttrain",
        help="prune and/or quantize a trained model (.pqz, run directory or checkpoint)",
        description="Post-training compression. Writes .pqz for pruning-only and fp16 results, "
        ".onnx for ort-int8, and TorchScript .pt for torch dynamic/static int8.",
    )
    p.add_argument("source", metavar="MODEL")
    add_output(
        p,
        dest="output",
        required=True,
        metavar="FILE",
        help="the file to write (.pqz, .onnx or .pt, as the method produces)",
    )
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
    add_factory(p)
    p.set_defaults(func=_posttrain)


def _posttrain(args: argparse.Namespace) -> int:
    import torch

    from pqcompress.codec.sources import load_model, save_pqz
    from pqcompress.data.batches import calibration_batches
    from pqcompress.posttrain import prune_l1, prune_random, prune_std, sparsity

    out = Path(args.output)
    if args.prune != "none" and not args.amount >= 0:
        raise ConfigError("--amount must be >= 0")
    if args.prune == "none" and args.quantize == "none":
        raise ConfigError("nothing to do: pass --prune and/or --quantize")
    model, manifest = load_model(args.source, which=args.which, model=args.factory)
    common = {"layers": args.layers, "params": args.params, "scope": args.scope}
    if args.prune == "l1":
        prune_l1(model, args.amount, **common)
    elif args.prune == "random":
        prune_random(model, args.amount, seed=args.seed, **common)
    elif args.prune == "std":
        prune_std(model, args.amount, **common)
    spec = manifest.get("model") or {}
    inputs = spec.get("inputs")  # token ids, masks, several inputs: the file's own spec
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
        from pqcompress.cli.export import _run_data_options, _run_dataset

        source = Path(args.source)
        same = source.suffix != ".pqz" and _run_dataset(source) == args.calibration_dataset
        calib = calibration_batches(
            args.calibration_dataset,
            root=args.data_root,
            batches=args.calibration_batches,
            options=_run_data_options(source) if same else None,
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
            model,
            out,
            input_shape=None if inputs else shape,
            inputs=inputs,
            int8=True,
            calibration=calib,
            compressed=manifest,
        )
        what = "ONNX int8 QDQ graph (ONNX Runtime)"
    else:
        from pqcompress.posttrain import quantize_dynamic_int8, quantize_static_int8

        if out.suffix != ".pt":
            raise ConfigError(f"--quantize {q} writes TorchScript; name the output *.pt")
        from pqcompress.export.onnx import example_inputs, resolve_inputs

        qm = (
            quantize_dynamic_int8(model)
            if q == "dynamic"
            else quantize_static_int8(model, calib, inputs=inputs)
        )
        example = example_inputs(resolve_inputs(None if inputs else shape, inputs), batch=1)
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
