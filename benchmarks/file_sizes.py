"""File sizes of a compressed VGG16-CIFAR: torch.save float32, the studies' dense int8 codes +
Deflate, and .pqz in every layout x codec, against the order-0 entropy bound; one process.

Settings: alpha in {0, 0.5, 1.25} x bits in {32, 8}, plus 4 bits at alpha 1.25 (docs/method.md §3,
§6), each applied with ``Compressor(model, CompressionConfig(alpha, bits, update="inplace"))
.apply()`` to random-init weights (or the weights of ``--run DIR``'s best.pt). One model build
per setting.

    nice -n 19 python benchmarks/file_sizes.py --out benchmarks/results/file_sizes.md
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from pqcompress.aware.compressor import Compressor
from pqcompress.codec import save
from pqcompress.codec.summary import (
    code_bytes,
    entropy_bits,
    studies_baseline_bytes,
    tensor_symbols,
)
from pqcompress.codec.tensorcode import element_bytes
from pqcompress.config import CompressionConfig
from pqcompress.models import build_model

SETTINGS = [(0.0, 32), (0.5, 32), (1.25, 32), (0.0, 8), (0.5, 8), (1.25, 8), (1.25, 4)]
LAYOUTS = ("dense", "bitmap", "csr", "csc")
CODECS = ("deflate", "zstd", "lzma")
MB = 1e6


def model_for(run: Path | None) -> torch.nn.Module:
    """VGG16-CIFAR: random init (seed 0), or the trained weights of a run directory (built
    with the run's own model_args, e.g. batch_norm)."""
    torch.manual_seed(0)
    if run is None:
        return build_model("vgg16_cifar", num_classes=10, input_shape=(3, 32, 32))
    from pqcompress.checkpoint import load_model_state, read_run_config

    config = read_run_config(run) or {}
    model = build_model(
        config.get("model", "vgg16_cifar"),
        num_classes=10,
        input_shape=(3, 32, 32),
        **(config.get("model_args") or {}),
    )
    model.load_state_dict(load_model_state(run / "best.pt"))
    model.pqc_model_args = dict(config.get("model_args") or {})  # for codec.save
    return model


def baselines(model: torch.nn.Module, comp: Compressor) -> dict[str, float]:
    state = model.state_dict()
    codes = {}
    for name in comp.names():
        r = comp.compressed(name)
        if r.codes is not None:
            codes[name] = r.codes.reshape(-1).numpy().astype("int64")
    buf = io.BytesIO()
    torch.save(state, buf)
    blobs, bits = [], 0.0
    for name, t in state.items():
        if name in codes:
            blobs.append(code_bytes(codes[name]))
            bits += entropy_bits(codes[name])
        else:
            blobs.append(element_bytes(t).tobytes())
            bits += entropy_bits(tensor_symbols(t))
    return {
        "torch_save": len(buf.getvalue()),
        "studies": studies_baseline_bytes(blobs),
        "bound": bits / 8,
    }


def pqz_size(model, comp, tmp: Path, layout: str, codec: str) -> tuple[int, float]:
    path = tmp / f"m-{layout}-{codec}.pqz"
    t0 = time.perf_counter()
    save(
        model, path, comp, layout=layout, codec=codec, model_name="vgg16_cifar", num_classes=10,
        model_args=getattr(model, "pqc_model_args", None),
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return size, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="a run dir whose best.pt to use")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/file_sizes.md"))
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    ap.add_argument("--codecs", nargs="+", default=list(CODECS))
    ap.add_argument(
        "--grid-bits",
        type=int,
        nargs="+",
        default=[8, 4],
        help="bit widths whose settings get the full layout x codec grid (32-bit rows: auto only)",
    )
    ap.add_argument(
        "--settings",
        nargs="+",
        default=None,
        metavar="ALPHA:BITS",
        help="only these settings (default: all of SETTINGS), e.g. 0.5:8 1.25:4",
    )
    args = ap.parse_args()
    settings = SETTINGS
    if args.settings:
        settings = [(float(a), int(b)) for a, b in (x.split(":") for x in args.settings)]
    rows, grids = [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for alpha, bits in settings:
            t0 = time.perf_counter()
            model = model_for(args.run)
            comp = Compressor(model, CompressionConfig(alpha=alpha, bits=bits, update="inplace"))
            comp.apply()
            base = baselines(model, comp)
            auto, auto_s = pqz_size(model, comp, tmp, "auto", "auto")
            grid = {}
            if bits in args.grid_bits:
                for layout in args.layouts:
                    for codec in args.codecs:
                        grid[(layout, codec)] = pqz_size(model, comp, tmp, layout, codec)[0]
                grids.append(((alpha, bits), grid))
            row = {
                "alpha": alpha,
                "bits": bits,
                "sparsity": comp.sparsity(),
                **base,
                "pqz": auto,
                "save_s": auto_s,
            }
            rows.append(row)
            print(
                f"alpha {alpha} bits {bits}: torch.save {base['torch_save'] / MB:.2f} MB, "
                f"studies {base['studies'] / MB:.2f} MB, bound {base['bound'] / MB:.2f} MB, "
                f".pqz {auto / MB:.2f} MB ({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
            del model, comp
    write_report(args, rows, grids)


def write_report(args, rows, grids) -> None:
    src = f"trained weights of {args.run}" if args.run else "random-init weights (seed 0)"
    lines = [
        "# .pqz file sizes: VGG16-CIFAR",
        "",
        f"Model: `vgg16_cifar` (33.6M parameters), {src}; compression applied once with "
        '`Compressor(model, CompressionConfig(alpha, bits, update="inplace")).apply()` '
        "(form `exact`, rounding `nearest`). Command: "
        "`nice -n 19 python benchmarks/file_sizes.py"
        + (f" --run {args.run}" if args.run else "")
        + (f" --settings {' '.join(args.settings)}" if args.settings else "")
        + (f" --grid-bits {' '.join(map(str, args.grid_bits))}" if args.grid_bits != [8, 4] else "")
        + "`.",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}. Sizes in MB (10^6 bytes), all measured in the same run.",
        "",
        "- **torch.save**: the float32 state dict (`torch.save(model.state_dict())`).",
        "- **studies**: the studies' approach: every tensor dense, codes as int8 (int16 for "
        "wider codes; 8-bit `exact` codes reach +-128 and are clipped, a size baseline only), "
        "other tensors float32, one Deflate stream (zlib level 9).",
        "- **bound**: order-0 entropy of the stored symbols, zeros included: per tensor, "
        "n x H(codes) for coded tensors and n x H(float32 bit patterns) for float tensors "
        "(for floats this is the empirical-distribution bound of n distinct values, which no "
        "coder reaches; it is a bound only for the coded rows).",
        '- **.pqz**: `pqcompress.codec.save(..., layout="auto", codec="auto")`, the whole '
        "file (header + manifest + payloads).",
        "",
        "| alpha | bits | sparsity | torch.save | studies | bound | .pqz | .pqz / bound "
        "| studies / .pqz | torch.save / .pqz | save s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['alpha']:g} | {r['bits']} | {100 * r['sparsity']:.2f}% | "
            f"{r['torch_save'] / MB:.2f} | {r['studies'] / MB:.2f} | {r['bound'] / MB:.2f} | "
            f"{r['pqz'] / MB:.2f} | {r['pqz'] / r['bound']:.3f} | "
            f"{r['studies'] / r['pqz']:.2f}x | {r['torch_save'] / r['pqz']:.2f}x | "
            f"{r['save_s']:.1f} |"
        )
    for (alpha, bits), grid in grids:
        lines += [
            "",
            f"## Every layout x codec at alpha {alpha:g}, {bits} bits (MB)",
            "",
            "| layout | " + " | ".join(args.codecs) + " |",
            "| --- |" + " --- |" * len(args.codecs),
        ]
        for layout in args.layouts:
            cells = [f"{grid[(layout, c)] / MB:.3f}" for c in args.codecs]
            lines.append(f"| {layout} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    record = {
        "weights": src,
        "rows": rows,
        "grids": [
            {"alpha": a, "bits": b, "mb": {f"{lay}/{c}": v / MB for (lay, c), v in g.items()}}
            for (a, b), g in grids
        ],
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} and its .json")


if __name__ == "__main__":
    main()
