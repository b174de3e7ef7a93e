"""Service faults on a real server on 127.0.0.1: memory per request (single large bodies and a
storm of them stay under the base manifest's memory limit), slow uploads, answers that would be
null, SIGTERM with requests in flight."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from serve_support import START_DEADLINE_S, Server, build_served_model

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def manifest_memory_limit() -> int:
    """The base Deployment's container memory limit, in bytes (e.g. 160Mi)."""
    docs = yaml.safe_load_all((ROOT / "deploy/k8s/base/deployment.yaml").read_text())
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    text = str(container["resources"]["limits"]["memory"])
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def peak_rss(pid: int) -> int:
    """The process's lifetime peak resident size (VmHWM), load included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_served_model(tmp_path_factory.mktemp("serve-faults"))


def _post(url: str, body: bytes, ctype: str = "application/json") -> tuple[int, dict]:
    import httpx

    with httpx.Client(base_url=url, timeout=120.0) as c:
        r = c.post("/v1/predict", content=body, headers={"content-type": ctype})
        return r.status_code, r.json()


@pytest.mark.requires("httpx", "onnxruntime")
def test_large_bodies_and_a_storm_stay_under_the_manifest_memory_limit(built):
    limit = manifest_memory_limit()
    srv = Server(built["path"], env={"PQC_MEMORY_LIMIT_BYTES": str(limit)}).wait_ready()
    try:
        info = srv.client.get("/v1/model").json()["memory"]
        assert info["limit_bytes"] == limit and 0 < info["request_budget_bytes"] < limit
        cases = {
            "2 MiB of one-number rows": b'{"inputs": [' + b"[0]," * (2 * MiB // 4) + b"[0]]}",
            "6 MiB of numbers": b'{"inputs": [' + b"0.1234567," * (6 * MiB // 10) + b"1]}",
            "8 MiB of numbers": b'{"inputs": [' + b"1," * (4 * MiB - 10) + b"1]}",
            "60 KiB of nulls (generic JSON)": b'{"inputs": [' + b"[null]," * 8000 + b"[null]]}",
            "a string array": b'{"inputs": ["' + b"a" * MiB + b'"]}',
        }
        for name, body in cases.items():
            status, answer = _post(srv.url, body)
            assert 400 <= status < 500 or status == 503, (name, status, answer)
            assert answer["error"]["code"], name
        storm = [b'{"inputs": [' + b"1," * (4 * MiB - 10) + b"1]}"] * 8
        results: list[tuple[int, dict]] = []
        threads = [
            threading.Thread(target=lambda b=b: results.append(_post(srv.url, b))) for b in storm
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and all(s in (413, 422, 503) for s, _ in results), results
        peak = peak_rss(srv.proc.pid)
        assert peak < limit, f"peak RSS {peak / MiB:.0f} MiB >= the limit {limit / MiB:.0f} MiB"
        ok = srv.client.post("/v1/predict", json={"inputs": built["x"][:4].tolist()})
        assert ok.status_code == 200  # still serving
    finally:
        srv.stop()


@pytest.mark.requires("httpx", "onnxruntime")
def test_a_valid_request_still_fits_a_small_budget(built):
    """The budget refuses what is too big, not what is normal: a full batch at 1 MiB."""
    srv = Server(built["path"], env={"PQC_REQUEST_MEMORY_BYTES": str(MiB)}).wait_ready()
    try:
        ok = srv.client.post("/v1/predict", json={"inputs": built["x"].tolist()})
        assert ok.status_code == 200 and len(ok.json()["labels"]) == len(built["x"])
        big = np.zeros((64, 1, 8, 8), np.float32)
        status, answer = _post(srv.url, json.dumps({"inputs": big.tolist()}).encode())
        assert status == 200, answer
    finally:
        srv.stop()


def _slow_upload(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{"
    )
    sock.sendall(head.encode())
    return sock


@pytest.mark.requires("httpx", "onnxruntime")
def test_slow_uploads_get_408_while_good_requests_get_200(built):
    srv = Server(built["path"], env={"PQC_BODY_TIMEOUT_S": "1"}).wait_ready()
    socks = [_slow_upload(srv.port) for _ in range(64)]
    answers: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        good = []
        while len(answers) < len(socks) and time.monotonic() < deadline:
            for i, s in enumerate(socks):  # one byte per second each
                if i not in answers:
                    with contextlib.suppress(OSError):
                        s.send(b"1")
            r = srv.client.post("/v1/predict", json={"inputs": built["x"][:1].tolist()})
            good.append(r.status_code)
            for i, s in enumerate(socks):
                if i not in answers:
                    s.setblocking(False)
                    try:
                        data = s.recv(4096)
                        answers[i] = data
                    except BlockingIOError:
                        pass
                    finally:
                        s.setblocking(True)
            time.sleep(1.0)
        assert len(answers) == len(socks), f"{len(socks) - len(answers)} slow uploads unanswered"
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers.values()), set(answers.values())
        assert good and set(good) == {200}
    finally:
        for s in socks:
            s.close()
        srv.stop()


@pytest.mark.requires("httpx", "onnxruntime")
@pytest.mark.parametrize("kind", ["json", "npy"])
def test_inputs_that_overflow_the_model_get_422_never_null(built, kind):
    import io

    srv = Server(built["path"], "--no-int8").wait_ready()
    try:
        x = np.full((2, 1, 8, 8), 3.0e38, np.float32)
        x[1] *= -1
        if kind == "json":
            r = srv.client.post("/v1/predict", json={"inputs": x.tolist()})
        else:
            buf = io.BytesIO()
            np.save(buf, x)
            r = srv.client.post(
                "/v1/predict",
                content=buf.getvalue(),
                headers={"content-type": "application/x-npy"},
            )
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "non_finite_output" and "3e+38" in error["message"]
    finally:
        srv.stop()


@pytest.mark.requires("httpx", "onnxruntime")
def test_sigterm_with_requests_in_flight_exits_clean(built):
    import httpx

    srv = Server(
        built["path"],
        env={"PQC_DEBUG_DELAY_S": "2", "PQC_DRAIN_TIMEOUT_S": "3", "PQC_LOG_LEVEL": "info"},
    ).wait_ready()
    statuses: list[object] = []

    def call() -> None:
        try:
            with httpx.Client(base_url=srv.url, timeout=60.0) as c:
                statuses.append(
                    c.post("/v1/predict", json={"inputs": built["x"][:1].tolist()}).status_code
                )
        except httpx.TransportError as exc:
            statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + START_DEADLINE_S
    while "pqc_http_requests_in_flight 3" not in _metrics_text(srv):  # some are running
        assert time.monotonic() < deadline
        time.sleep(0.05)
    srv.proc.send_signal(signal.SIGTERM)
    _, err = srv.proc.communicate(timeout=120)
    for t in threads:
        t.join()
    assert srv.proc.returncode == 0, err
    assert "Traceback" not in err and "Event loop is closed" not in err, err
    assert 200 in statuses


def _metrics_text(srv: Server) -> str:
    try:
        text = srv.client.get("/metrics").text
    except Exception:
        return ""
    lines = [ln for ln in text.splitlines() if ln.startswith("pqc_http_requests_in_flight ")]
    if not lines:
        return ""
    return "pqc_http_requests_in_flight 3" if float(lines[0].split()[1]) >= 3 else ""
