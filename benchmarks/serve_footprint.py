"""Footprint of the inference service for VGG16-CIFAR: float32 (torch runtime and ONNX Runtime)
vs 8-bit uniform form (int8 kernels) vs 8-bit dead-zone "exact" form (float graph, exact
decoded weights), all served by ``pqcompress serve`` on 127.0.0.1 in the same run.

Per service: time from process start to the first /readyz 200 (the "new replica" time of
docs/method.md §6), resident memory (VmRSS) once ready (after the warm-up) and after the latency
run, and batch-1 latency p50/p95 over HTTP (.npy body of one 3x32x32 input) with
``--clients`` concurrent clients. Ratios are to the float32 torch service. With
``--float32/--uniform/--exact FILE`` the trained .pqz files are served (what users ship);
without them the model is randomly initialised (seeded), alpha 0.5 for the compressed forms.
Two extra rows serve the ONNX Runtime variants with ``--ort-weights embedded`` (a serialized
model with the weights inside, the way before OrtValue initializers). Services run one at a
time, each with ``--threads`` intra-op threads.

    OMP_NUM_THREADS=1 python benchmarks/serve_footprint.py --float32 f.pqz --uniform u.pqz \
        --exact e.pqz
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from pqcompress import codec, proctree
from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig
from pqcompress.models import build_model

SHAPE = (3, 32, 32)


def make_models(tmp: Path, alpha: float, codec_name: str = "zstd") -> dict[str, Path]:
    torch.manual_seed(0)
    calib = [torch.randn(8, *SHAPE) for _ in range(2)]
    common = {
        "model_name": "vgg16_cifar",
        "num_classes": 10,
        "input_shape": SHAPE,
        "codec": codec_name,
    }
    out = {}
    model = build_model("vgg16_cifar", num_classes=10, input_shape=SHAPE).eval()
    out["float32"] = codec.save(model, tmp / "float32.pqz", onnx="float32", **common)
    for form, graphs in (("uniform", "all"), ("exact", "float32")):
        torch.manual_seed(0)
        m = build_model("vgg16_cifar", num_classes=10, input_shape=SHAPE).eval()
        comp = Compressor(m, CompressionConfig(form=form, bits=8, alpha=alpha))
        comp.apply()
        kw = {"calibration": calib} if graphs == "all" else {}
        out[form] = codec.save(m, tmp / f"{form}8.pqz", comp, onnx=graphs, **common, **kw)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    rss = proctree.rss_bytes(pid)
    return float("nan") if rss is None else rss / 2**20


def measure(name: str, path: Path, args: list[str], ns: argparse.Namespace) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "pqcompress.cli.main", "serve", str(path), "--port", str(port)]
    cmd += ["--threads", str(ns.threads), "--log-level", "warning", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(ns.threads)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready_s = None
    with httpx.Client(base_url=url, timeout=60) as c:
        while time.perf_counter() - t0 < 300:
            if proc.poll() is not None:
                raise SystemExit(f"{name}: server exited: {proc.stderr.read().decode()}")
            try:
                if c.get("/readyz").status_code == 200:
                    ready_s = time.perf_counter() - t0
                    break
            except httpx.TransportError:
                time.sleep(0.005)
        rss_ready = rss_mib(proc.pid)
        info = c.get("/v1/model").json()
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).standard_normal((1, *SHAPE)).astype(np.float32))
    body = buf.getvalue()
    lat: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            headers = {"Content-Type": "application/x-npy"}
            for _ in range(ns.warmup):
                c.post("/v1/predict", content=body, headers=headers)
            mine = []
            for _ in range(ns.requests):
                s = time.perf_counter()
                r = c.post("/v1/predict", content=body, headers=headers)
                mine.append(time.perf_counter() - s)
                assert r.status_code == 200, r.text
            with lock:
                lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(ns.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss_after = rss_mib(proc.pid)
    proc.terminate()
    rc = proc.wait(60)
    q = statistics.quantiles(sorted(lat), n=100, method="inclusive")
    return {
        "service": name,
        "runtime": info["runtime"],
        "int8": info["int8"],
        "file_bytes": info["file_bytes"],
        "ready_s": ready_s,
        "rss_ready_mib": rss_ready,
        "rss_after_mib": rss_after,
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * q[94],
        "requests": len(lat),
        "exit_code": rc,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=50, help="per client")
    ap.add_argument("--warmup", type=int, default=3, help="per client")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--codec",
        default="auto",
        help="entropy codec of the served .pqz files (auto, the default users get: zstd/deflate/raw)",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_footprint.md"))
    for form in ("float32", "uniform", "exact"):
        ap.add_argument(f"--{form}", type=Path, default=None, help=f"trained {form} .pqz")
    ns = ap.parse_args()
    given = [ns.float32, ns.uniform, ns.exact]
    if any(given) and not all(given):
        raise SystemExit("give all of --float32, --uniform and --exact, or none")
    with tempfile.TemporaryDirectory(prefix="pqc-serve-bench-") as tmp:
        t = time.perf_counter()
        if all(given):
            paths = {"float32": ns.float32, "uniform": ns.uniform, "exact": ns.exact}
        else:
            paths = make_models(Path(tmp), ns.alpha, ns.codec)
        print(f"models ready in {time.perf_counter() - t:.1f} s", flush=True)
        embedded = ["--ort-weights", "embedded"]
        plan = [
            ("float32, torch runtime", paths["float32"], ["--runtime", "torch"]),
            ("float32, onnxruntime", paths["float32"], []),
            ("float32, onnxruntime, embedded weights", paths["float32"], embedded),
            ("8-bit uniform, onnxruntime int8", paths["uniform"], ["--int8"]),
            ("8-bit uniform, onnxruntime int8, embedded weights", paths["uniform"],
             ["--int8", *embedded]),
            ("8-bit dead-zone (exact), onnxruntime float", paths["exact"], []),
        ]  # fmt: skip
        rows = []
        for name, path, args in plan:
            rows.append(measure(name, path, args, ns))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["rss_ratio"] = r["rss_ready_mib"] / base["rss_ready_mib"]
        r["p95_speedup"] = base["p95_ms"] / r["p95_ms"]
        r["ready_ratio"] = r["ready_s"] / base["ready_s"]
    keys = ["clients", "requests", "threads"]
    keys += ["float32", "uniform", "exact"] if all(given) else ["alpha", "codec"]
    cmd = "python benchmarks/serve_footprint.py " + " ".join(
        f"--{k} {getattr(ns, k)}" for k in keys
    )
    weights = (
        f"Trained weights: {', '.join(str(p) for p in given)}."
        if all(given)
        else f"Randomly initialised VGG16-CIFAR (seed 0; no training), alpha {ns.alpha}."
    )
    lines = [
        "# serve_footprint: VGG16-CIFAR served by `pqcompress serve`",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the "
        f"end of the run. {weights} Batch 1, {ns.clients} concurrent clients x "
        f"{ns.requests} requests (.npy body), {ns.threads} intra-op thread(s) per service. "
        "Ratios are to the float32 torch service of the same run.",
        "",
        "| service | file MB | ready s | RSS ready MiB | RSS after load MiB | p50 ms | p95 ms "
        "| RSS ratio | p95 speed-up | ready ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['service']} | {r['file_bytes'] / 1e6:.2f} | {r['ready_s']:.2f} | "
            f"{r['rss_ready_mib']:.0f} | {r['rss_after_mib']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['rss_ratio']:.2f} | {r['p95_speedup']:.2f}x | "
            f"{r['ready_ratio']:.2f} |"
        )
    lines += [
        "",
        "Targets (issues 5, 12): 8-bit service <= 150 MiB resident, >= 4x lower p95 than the float32 "
        "torch service, ready in <= 1 s. Studies: 412 vs 701 MiB, 1.8x latency, 2.1 s to ready.",
    ]
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text("\n".join(lines) + "\n")
    ns.out.with_suffix(".json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
