"""Cold start: ``pqcompress.load`` of a model file in a fresh process, against ``torch.load`` of
the same model's state dict (``import torch; torch.load(state_dict)``), median of repeats.

Each repeat starts new Python processes, interleaved: one that imports torch and torch.loads
the state dict, one that imports torch and pqcompress and calls ``pqc.load`` (model rebuilt
from the registry), and one that only imports torch. Each child times itself with
``perf_counter`` and prints JSON, so interpreter start-up is left out of every figure. The
figure of merit is the cold ``pqc.load`` beyond ``import torch`` (target: <= 0.3 s for a small
model), and its ratio to ``torch.load`` beyond ``import torch``.

    python benchmarks/cold_start.py FILE.pqz [FILE.pqz ...] --repeats 7 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD_TORCH = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
torch.load({state!r}, map_location="cpu", weights_only=True)
t2 = time.perf_counter()
print(json.dumps({{"import_torch": t1 - t0, "load": t2 - t1}}))
"""

CHILD_PQC = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import pqcompress as pqc
model = pqc.load({path!r}{decoder})
t2 = time.perf_counter()
heavy = [m for m in ("numba", "torch._dynamo", "sympy", "onnx", "scipy") if m in sys.modules]
print(json.dumps({{"import_torch": t1 - t0, "load": t2 - t1, "imported": heavy}}))
"""


def child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(path: Path, repeats: int) -> dict:
    import torch

    import pqcompress as pqc

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state_dict.pt"
        torch.save(pqc.load(path).state_dict(), state)
        rows: dict[str, list[dict]] = {"torch.load": [], "pqc.load": [], "pqc.load numba": []}
        child(CHILD_TORCH.format(state=str(state)))  # warm the page cache and numba's cache
        child(CHILD_PQC.format(path=str(path), decoder=", decoder='numba'"))
        for _ in range(repeats):
            rows["torch.load"].append(child(CHILD_TORCH.format(state=str(state))))
            rows["pqc.load"].append(child(CHILD_PQC.format(path=str(path), decoder="")))
            rows["pqc.load numba"].append(
                child(CHILD_PQC.format(path=str(path), decoder=", decoder='numba'"))
            )
        state_bytes = state.stat().st_size
    med = {k: statistics.median(r["load"] for r in v) for k, v in rows.items()}
    torch_import = statistics.median(r["import_torch"] for v in rows.values() for r in v)
    return {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "state_dict_bytes": state_bytes,
        "repeats": repeats,
        "import_torch_s": torch_import,
        "beyond_import_torch_s": med,
        "ratio_to_torch_load": {k: v / med["torch.load"] for k, v in med.items()},
        "imported_by_pqc_load": rows["pqc.load"][-1]["imported"],
        "imported_by_pqc_load_numba": rows["pqc.load numba"][-1]["imported"],
        "rounds": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for path in args.files:
        r = bench(path, args.repeats)
        results.append(r)
        b = r["beyond_import_torch_s"]
        print(
            f"{path} ({r['file_bytes']:,} bytes; state dict {r['state_dict_bytes']:,}): "
            f"import torch {r['import_torch_s']:.3f} s; beyond it: torch.load "
            f"{b['torch.load']:.3f} s, pqc.load {b['pqc.load']:.3f} s "
            f"({r['ratio_to_torch_load']['pqc.load']:.2f}x), pqc.load numba "
            f"{b['pqc.load numba']:.3f} s; pqc.load imported {r['imported_by_pqc_load'] or 'none'}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
