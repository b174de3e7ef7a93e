"""Peak memory of loading a served model: the service's path (only the tensors the graph
takes, coded weights straight to int8, tensor by tensor) against decoding every tensor to
float first (how the service loaded before), each in a fresh process, same file, same run.

Per mode: resident memory once the ONNX Runtime session is ready (VmRSS) and the lifetime
peak (VmHWM, load included), in MiB. The ratio is the full decode's peak over the row's.

    python benchmarks/load_peak.py vgg16_u8.pqz --table benchmarks/results/load_peak.md

Without a file, an 8-bit uniform VGG16-CIFAR (alpha 1.25, random init; memory does not
depend on the weights' values beyond their sparsity) with its int8 graph is written first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import ctypes, json, sys
from pathlib import Path

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024

path, mode = sys.argv[1], sys.argv[2]
import onnxruntime as ort
from pqcompress.codec import portable
base = status("VmRSS")
if mode == "service":
    from pqcompress.serve.runtime import load_served_model
    from pqcompress.serve.settings import ServeSettings
    served = load_served_model(ServeSettings(model=path, threads=1))
else:  # every tensor decoded to float (and the int8 graph's codes), then the session
    manifest = portable.read_manifest(path)
    g = next(x for x in manifest["graphs"] if x["name"] == "int8")
    codes_for = {i["tensor"] for i in g["initializers"] if i["source"] == "codes"}
    _, arrays, codes, payload, where = portable._decode(path, 1 << 34, codes_for)
    weights = portable.initializer_arrays(g, arrays, codes, where)
    del arrays, codes
    raw = portable.attach_placeholders(portable._inflate(where, "graph", g, payload), weights)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    names = list(weights)
    opts.add_external_initializers(
        names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names]
    )
    session = ort.InferenceSession(raw, sess_options=opts, providers=["CPUExecutionProvider"])
    del weights, opts
    ctypes.CDLL("libc.so.6").malloc_trim(0)
print(json.dumps({"base": base, "rss": status("VmRSS"), "peak": status("VmHWM")}))
"""


def _make_model(path: Path) -> None:
    import torch

    import pqcompress as pqc
    from pqcompress.aware.compressor import Compressor
    from pqcompress.config import CompressionConfig
    from pqcompress.models import build_model

    torch.manual_seed(0)
    model = build_model("vgg16_cifar", num_classes=10, input_shape=(3, 32, 32))
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(torch.randn(16, 3, 32, 32))
    model.eval()
    comp = Compressor(model, CompressionConfig(bits=8, form="uniform", alpha=1.25))
    comp.apply()
    calib = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    pqc.save(model, path, comp, input_shape=(3, 32, 32), onnx="all", calibration=calib)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", type=Path, help="a .pqz with an int8 graph")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pqc-peak-") as tmp:
        path = args.model
        if path is None:
            path = Path(tmp) / "vgg16_u8.pqz"
            _make_model(path)
        rows = {}
        for mode in ("full-decode", "service"):
            runs = []
            for _ in range(args.rounds):
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path), mode],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                )
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            rows[mode] = {k: max(r[k] for r in runs) for k in runs[0]}
        size = path.stat().st_size
    full = rows["full-decode"]["peak"]
    lines = [
        "# Loading a served int8 model: peak memory",
        "",
        f"File: {args.model or 'VGG16-CIFAR 8-bit uniform, alpha 1.25 (random init)'}, "
        f"{size:,} bytes; one fresh process per load, the largest of {args.rounds} rounds.",
        "",
        "| load | RSS before (MiB) | RSS ready (MiB) | peak VmHWM (MiB) | peak / ready | full-decode peak / this |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, r in rows.items():
        lines.append(
            f"| {mode} | {r['base']:.0f} | {r['rss']:.0f} | {r['peak']:.0f} | "
            f"{r['peak'] / r['rss']:.2f}x | {full / r['peak']:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    if args.table:
        args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
