"""Hostile-request campaign against a real `pqcompress serve` on 127.0.0.1: seeded malformed
requests of many kinds from 4 concurrent clients, then counts per kind of answer; then the
memory cases (large JSON bodies one at a time and eight 8 MiB bodies at once) and 64 slow
uploads at 1 byte/s beside good requests, each with the server's peak RSS against the base
deployment's memory limit (the server gets that limit as PQC_MEMORY_LIMIT_BYTES, as the pod
does through the Downward API).

Kinds: random bytes under every content type; `.npy` files with mutated headers (shapes, dtypes,
orders, lengths); corrupted and lying PNG/JPEG images (bit flips, truncation, huge declared
sizes); JSON bodies of random structure (wrong nesting, strings, NaN, 1e308, huge lists, deep
nesting); multipart forms with wrong fields; made-up methods and paths; oversized headers.
"Mishandled" is any 5xx other than 503/504 (load shedding and timeouts are answers), a
connection the server broke, or a server that is not ready afterwards. The server's peak RSS
(VmHWM) is reported beside the base deployment's memory limit.

    python benchmarks/hostile_http.py MODEL.pqz 3000
    python benchmarks/hostile_http.py MODEL.pqz 0      # only the memory and slow-body cases
"""

from __future__ import annotations

import collections
import io
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
from PIL import Image

from pqcompress import proctree

CONTENT_TYPES = [
    "application/json", "application/x-npy", "application/octet-stream", "image/png",
    "image/jpeg", "multipart/form-data; boundary=xyz", "text/plain", "", "image/gif",
    "application/json; charset=latin-1",
]  # fmt: skip
METHODS = ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO", "PROPFIND", "X" * 40]
PATHS = [
    "/v1/predict",
    "/v1/model",
    "/metrics",
    "/healthz",
    "/readyz",
    "/v1/predict/",
    "/v1/../v1/predict",
    "/" + "a" * 3000,
    "/v1/predict?x=" + "y" * 5000,
    "/%00",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def npy_header(shape, dtype="<f4", order=False, extra=b"") -> bytes:
    text = f"{{'descr': '{dtype}', 'fortran_order': {order}, 'shape': {tuple(shape)}, }}"
    body = text.encode("latin1")
    pad = 64 - (10 + len(body) + 1) % 64
    header = body + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + extra


def png(rng: random.Random, size=(28, 28)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.uint8(np.full(size, rng.randrange(256)))).save(buf, "PNG")
    return buf.getvalue()


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    if rng.random() < 0.3:
        b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def random_json(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice([0, -1, 1.5, 1e308, -1e308, "x", None, True, [], {}, 2**70])
    if r < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {rng.choice(["inputs", "x", "data", ""]): random_json(rng, depth + 1)}


def request(rng: random.Random, shape) -> dict:
    kind = rng.choice(["bytes", "npy", "image", "json", "multipart", "method", "headers"])
    ct = rng.choice(CONTENT_TYPES)
    if kind == "bytes":
        body = os.urandom(rng.choice([0, 1, 7, 100, 5000, 300_000]))
        return {
            "kind": kind,
            "method": "POST",
            "url": "/v1/predict",
            "content": body,
            "headers": {"Content-Type": ct},
        }
    if kind == "npy":
        shape_ = rng.choice(
            [
                (1, *shape),
                (2**31, *shape),
                (0,),
                (-1, 3),
                (1, 1, 2, 2),
                (3, *shape),
                (2**20, 2**20),
                (),
            ]
        )
        dtype = rng.choice(["<f4", "<f8", "|u1", "<i8", "|O", "<c8", ">f4", "<U3", "??"])
        data = os.urandom(rng.choice([0, 16, 4 * int(np.prod(shape)), 10_000]))
        body = npy_header(shape_, dtype, rng.random() < 0.2, data)
        if rng.random() < 0.3:
            body = mutate(body, rng)
        return {
            "kind": kind,
            "method": "POST",
            "url": "/v1/predict",
            "content": body,
            "headers": {"Content-Type": "application/x-npy"},
        }
    if kind == "image":
        base = png(rng)
        if rng.random() < 0.3:  # a header that claims a huge canvas
            base = (
                base[:16] + struct.pack(">II", 60000, rng.choice([60000, 1, 2**31 - 1])) + base[24:]
            )
        body = mutate(base, rng) if rng.random() < 0.7 else base
        return {
            "kind": kind,
            "method": "POST",
            "url": "/v1/predict",
            "content": body,
            "headers": {"Content-Type": rng.choice(["image/png", "image/jpeg", ct])},
        }
    if kind == "json":
        doc = {"inputs": random_json(rng)} if rng.random() < 0.7 else random_json(rng)
        text = json.dumps(doc, allow_nan=True)
        if rng.random() < 0.1:
            text = "[" * 20000 + "]" * 20000
        return {
            "kind": kind,
            "method": "POST",
            "url": "/v1/predict",
            "content": text.encode(),
            "headers": {"Content-Type": "application/json"},
        }
    if kind == "multipart":
        field = rng.choice(["file", "files", "image", ""])
        return {
            "kind": kind,
            "method": "POST",
            "url": "/v1/predict",
            "files": {field or "x": ("a.png", mutate(png(rng), rng), "image/png")},
        }
    if kind == "method":
        return {
            "kind": kind,
            "method": rng.choice([*METHODS, "POST"]),
            "url": rng.choice(PATHS),
            "content": b"",
            "headers": {},
        }
    return {
        "kind": kind,
        "method": "POST",
        "url": "/v1/predict",
        "content": b"{}",
        "headers": {"Content-Type": ct, "X-Big": "v" * rng.choice([10, 10_000, 60_000])},
    }


MiB = 1 << 20
MEMORY_CASES = {
    "2 MiB of one-number rows": b'{"inputs": [' + b"[0]," * (2 * MiB // 4) + b"[0]]}",
    "6 MiB of numbers": b'{"inputs": [' + b"0.1234567," * (6 * MiB // 10) + b"1]}",
    "8 MiB of numbers": b'{"inputs": [' + b"1," * (4 * MiB - 10) + b"1]}",
}


def manifest_memory_limit() -> int:
    """The base Deployment's container memory limit in bytes."""
    import yaml

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "deploy/k8s/base/deployment.yaml")) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d and d.get("kind") == "Deployment"]
    text = str(
        docs[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    )
    for suffix, factor in (("Ki", 1 << 10), ("Mi", MiB), ("Gi", 1 << 30)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def memory_cases(url: str, pid: int) -> list[str]:
    """Each large body alone, then eight 8 MiB bodies at once: answers and peak RSS after each."""
    lines = []
    for name, body in MEMORY_CASES.items():
        r = httpx.post(url + "/v1/predict", content=body, timeout=120,
                       headers={"content-type": "application/json"})  # fmt: skip
        code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
        lines.append(f"| {name} | {r.status_code} {code} | {peak_rss_mib(pid):.1f} |")
    answers: list[str] = []

    def post() -> None:
        r = httpx.post(url + "/v1/predict", content=MEMORY_CASES["8 MiB of numbers"],
                       timeout=120, headers={"content-type": "application/json"})  # fmt: skip
        code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
        answers.append(f"{r.status_code} {code}".strip())

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = ", ".join(f"{n} x {a}" for a, n in collections.Counter(answers).items())
    lines.append(f"| eight 8 MiB bodies at once | {summary} | {peak_rss_mib(pid):.1f} |")
    return lines


def slow_bodies(url: str, port: int, shape: tuple[int, ...], seconds: float = 40.0) -> str:
    """64 uploads sending 1 byte/s, good requests beside them: what each side got."""
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{")  # fmt: skip
    socks = []
    for _ in range(64):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head)
        socks.append(s)
    answers: dict[int, str] = {}
    good: collections.Counter[int] = collections.Counter()
    t0 = time.monotonic()
    first: float | None = None
    good_body = {"inputs": np.zeros((1, *shape), dtype=np.float32).tolist()}
    while time.monotonic() - t0 < seconds and len(answers) < len(socks):
        for i, s in enumerate(socks):
            if i in answers:
                continue
            try:
                s.send(b"1")
                s.setblocking(False)
                data = s.recv(64)
                answers[i] = data.split(b"\r\n")[0].decode()[9:12] if data else "closed"
                first = first or time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                answers[i] = "closed"
            finally:
                s.setblocking(True)
        good[httpx.post(url + "/v1/predict", json=good_body, timeout=60).status_code] += 1
        time.sleep(1.0)
    for s in socks:
        s.close()
    got = collections.Counter(answers.values())
    waiting = len(socks) - len(answers)
    return (
        f"slow uploads (64 at 1 byte/s, {seconds:.0f} s): answered {dict(got)}, still held "
        f"{waiting}; first answer after {first or float('nan'):.1f} s; good requests beside "
        f"them: {dict(good)}"
    )


def peak_rss_mib(pid: int) -> float:
    peak = proctree.peak_rss_bytes(pid)
    return float("nan") if peak is None else peak / 2**20


def main() -> None:
    model, total = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqcompress.cli.main", "serve", model, "--port", str(port),
         "--log-level", "error"],
        env={**os.environ, "OMP_NUM_THREADS": "1",
             "PQC_MEMORY_LIMIT_BYTES": str(manifest_memory_limit())},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the server did not become ready in 300 s")
        time.sleep(0.2)
    shape = tuple(httpx.get(url + "/v1/model").json()["input_shape"])
    counts: collections.Counter[str] = collections.Counter()
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    bad: list[str] = []
    details: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        rng = random.Random(1000 + k)
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(total // 4):
                req = request(rng, shape)
                kind = req.pop("kind")
                body = req.get("content") or b""
                what = f"{kind} {req.get('headers', {}).get('Content-Type', '')} {len(body)} B {body[:70]!r}"
                try:
                    code = c.request(**req).status_code
                    outcome = f"{code // 100}xx" if code not in (503, 504) else str(code)
                    mishandled = code >= 500 and code not in (503, 504)
                except httpx.HTTPError as exc:
                    outcome, mishandled = f"error:{type(exc).__name__}", True
                with lock:
                    counts[outcome] += 1
                    by_kind[kind][outcome] += 1
                    if mishandled:
                        bad.append(f"{kind}: {outcome}")
                        details.append(f"{outcome}: {what}")

    limit = manifest_memory_limit()
    ready_peak = peak_rss_mib(proc.pid)
    print(f"base manifest memory limit {limit / MiB:.0f} MiB; peak RSS when ready "
          f"{ready_peak:.1f} MiB")  # fmt: skip
    print("| case | answer | peak RSS so far (MiB) |\n| --- | --- | ---: |")
    for line in memory_cases(url, proc.pid):
        print(line)
    print(slow_bodies(url, port, shape))
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ready = httpx.get(url + "/readyz", timeout=10).status_code
    good = np.zeros((1, *shape), dtype=np.float32).tolist()
    still = httpx.post(url + "/v1/predict", json={"inputs": good}, timeout=30).status_code
    peak = peak_rss_mib(proc.pid)
    proc.terminate()
    proc.wait(timeout=60)
    print(f"tried {sum(counts.values())} requests in {wall:.0f} s: {dict(counts)}")
    for kind, c in sorted(by_kind.items()):
        print(f"  {kind:<10} {dict(c)}")
    print(f"mishandled {len(bad)} {collections.Counter(bad).most_common(5)}")
    for d in details[:10]:
        print(f"    {d}")
    print(f"afterwards: /readyz {ready}, a good request {still}; peak RSS {peak:.1f} MiB "
          f"(limit {limit / MiB:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
