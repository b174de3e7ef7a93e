"""Threads sized from the CPU budget vs one thread per core, under a real CPU limit, beside a
second CPU-heavy process: a training epoch's time and the service's p95, in the same run.

The limit is a real cgroup CPU quota (``--quota`` CPUs, cgroup v2 or v1, where this process
may create one: root on a cgroupfs) or, elsewhere, a real affinity mask of ``floor(quota)``
CPUs (taskset). A busy process (``--neighbours``, pure-Python loops) shares the machine.

- training: ``pqcompress train`` of cnn5 on digits, once with the default (threads from the
  budget: 1 under a 1-CPU quota) and once with ``PQCOMPRESS_THREADS=<cores>`` (what torch
  and numba do by default: a thread per core); median epoch time of the run's metrics.
- serving: ``pqcompress serve`` of a .pqz, once sized (1 intra-op thread x budget inference
  threads) and once unsized (``--threads <cores> --inference-threads <cores>``); a closed
  loop of ``--clients`` clients sends ``--requests`` JSON predictions; p50/p95.

    python benchmarks/cpu_quota.py --model model.pqz --quota 1 --json benchmarks/results/cpu_quota.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path


def busy(stop: mp.Event) -> None:  # a CPU-heavy neighbour
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x ^= i


class Limit:
    """A real cgroup with a CPU quota (preferred) or a taskset mask; ``prefix`` enters it."""

    def __init__(self, quota: float) -> None:
        self.quota = quota
        self.path: Path | None = None
        self.kind = "taskset"
        for base, kind in ((Path("/sys/fs/cgroup"), "v2"), (Path("/sys/fs/cgroup/cpu"), "v1")):
            probe = base / ("cgroup.controllers" if kind == "v2" else "cpu.cfs_quota_us")
            if not probe.is_file():
                continue
            path = base / f"pqc-bench-{uuid.uuid4().hex[:8]}"
            try:
                path.mkdir()
                q = int(quota * 100_000)
                if kind == "v2":
                    (path / "cpu.max").write_text(f"{q} 100000\n")
                else:
                    (path / "cpu.cfs_quota_us").write_text(f"{q}\n")
            except OSError:
                if path.exists():
                    path.rmdir()
                continue
            self.path, self.kind = path, f"cgroup {kind}"
            break

    @property
    def prefix(self) -> list[str]:
        if self.path is not None:
            return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh"]
        cpus = sorted(os.sched_getaffinity(0))[: max(1, int(self.quota))]
        return ["taskset", "-c", ",".join(map(str, cpus))]

    def close(self) -> None:
        if self.path is not None:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def env_without_thread_vars(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()}
    for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "PQCOMPRESS_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    env.update(extra)
    return env


def train_epoch_time(limit: Limit, env: dict[str, str], epochs: int, out: Path) -> float:
    cmd = [
        *limit.prefix, sys.executable, "-m", "pqcompress.cli.main", "train", "--model", "cnn5",
        "--dataset", "digits", "--epochs", str(epochs), "--alpha", "0.5", "--bits", "8",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["train_time_s"] for r in rows[1:])  # epoch 1 warms numba up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_latencies(
    limit: Limit, model: Path, args: list[str], clients: int, requests: int
) -> dict:
    import httpx
    import numpy as np

    port = free_port()
    cmd = [*limit.prefix, sys.executable, "-m", "pqcompress.cli.main", "serve", str(model),
           "--port", str(port), "--log-level", "warning", *args]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env_without_thread_vars(), stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            info = c.get("/v1/model").json()
        x = np.random.default_rng(0).random((1, *info["input_shape"]), dtype=np.float32)
        body = {"inputs": x.tolist()}
        lat: list[float] = []
        lock = threading.Lock()
        per_client = requests // clients

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                for _ in range(per_client):
                    t0 = time.perf_counter()
                    r = c.post("/v1/predict", json=body)
                    dt = time.perf_counter() - t0
                    if r.status_code == 200:
                        with lock:
                            lat.append(dt)

        for _ in range(2):  # warm-up
            client_warm = httpx.post(f"{url}/v1/predict", json=body, timeout=60)
            client_warm.raise_for_status()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    lat.sort()
    return {
        "requests_ok": len(lat),
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p95_ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))],
        "throughput_rps": len(lat) / wall,
        "threads": info.get("threads"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, required=True, help="a .pqz file to serve")
    ap.add_argument("--quota", type=float, default=1.0, help="CPUs the limit allows")
    ap.add_argument("--neighbours", type=int, default=1, help="busy processes beside it")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    limit = Limit(args.quota)
    if limit.path is None and shutil.which("taskset") is None:
        sys.exit("no writable cgroup and no taskset: cannot make a real CPU limit here")
    stop = mp.Event()
    neighbours = [mp.Process(target=busy, args=(stop,)) for _ in range(args.neighbours)]
    for p in neighbours:
        p.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, env in (
                ("sized (default)", env_without_thread_vars()),
                (f"one thread per core ({cores})", env_without_thread_vars(PQCOMPRESS_THREADS=str(cores))),
            ):  # fmt: skip
                t = train_epoch_time(limit, env, args.epochs, Path(tmp) / label.split()[0])
                rows.append({"part": "training epoch", "setting": label, "epoch_s": t})
                print(f"training, {label}: median epoch {t:.3f} s")
            for label, flags in (
                ("sized (default)", []),
                (f"one thread per core ({cores})",
                 ["--threads", str(cores), "--inference-threads", str(cores)]),
            ):  # fmt: skip
                r = serve_latencies(limit, args.model, flags, args.clients, args.requests)
                rows.append({"part": "serving", "setting": label, **r})
                print(
                    f"serving, {label}: p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
                    f"{r['throughput_rps']:.1f} req/s"
                )
    finally:
        stop.set()
        for p in neighbours:
            p.join(timeout=10)
        limit.close()
    train = [r for r in rows if r["part"] == "training epoch"]
    serve = [r for r in rows if r["part"] == "serving"]
    summary = {
        "limit": limit.kind,
        "quota_cpus": args.quota,
        "cores": cores,
        "neighbours": args.neighbours,
        "epoch_ratio_unsized_to_sized": train[1]["epoch_s"] / train[0]["epoch_s"],
        "p95_ratio_unsized_to_sized": serve[1]["p95_ms"] / serve[0]["p95_ms"],
        "rows": rows,
    }
    print(
        f"{limit.kind}, quota {args.quota:g} CPUs, {args.neighbours} busy neighbour(s): "
        f"unsized/sized epoch {summary['epoch_ratio_unsized_to_sized']:.2f}x, "
        f"p95 {summary['p95_ratio_unsized_to_sized']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
