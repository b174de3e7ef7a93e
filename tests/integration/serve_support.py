"""Shared parts of the integration tests that drive a real service: a tiny trained model
saved as .pqz (with its ONNX graphs) and a `pqcompress serve` subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

START_DEADLINE_S = 120.0  # generous: the suite shares a busy machine; not a timed assertion


def build_served_model(out: Path) -> dict:
    """cnn5 on digits, a few P->Q steps (uniform, 8 bits), saved with both ONNX graphs."""
    from pqcompress import codec
    from pqcompress.aware.compressor import Compressor
    from pqcompress.config import CompressionConfig, DataConfig
    from pqcompress.data import build_dataset, make_loader
    from pqcompress.models.registry import build_model

    torch.manual_seed(0)
    data = build_dataset("digits", DataConfig(augment=False, val_fraction=0.0))
    model = build_model("cnn5", num_classes=10, input_shape=(1, 8, 8))
    comp = Compressor(model, CompressionConfig(form="uniform", bits=8, alpha=0.5))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for (x, y), _ in zip(make_loader(data.train, 64, shuffle=True, seed=0), range(12)):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        comp.step()
    comp.apply()
    model.eval()
    calib = [x for (x, _), _ in zip(make_loader(data.train, 64, shuffle=False), range(2))]
    path = codec.save(
        model,
        out / "cnn5.pqz",
        comp,
        model_name="cnn5",
        num_classes=10,
        input_shape=(1, 8, 8),
        preprocessing=data.preprocessing,
        class_names=data.class_names,
        onnx="all",
        calibration=calib,
    )
    x_test, y_test = next(iter(make_loader(data.test, 64, shuffle=False)))
    return {"path": path, "data": data, "x": x_test.numpy(), "y": y_test.numpy()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `pqcompress serve` subprocess and an HTTP client for it."""

    def __init__(
        self,
        model: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [*prefix, sys.executable, "-m", "pqcompress.cli.main", "serve", str(model)]
        cmd += ["--port", str(self.port), "--log-level", "warning", *args]
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        import httpx  # here, not at import: a test module without httpx still imports

        self.proc = subprocess.Popen(
            cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # the server closes a keep-alive connection idle for its header timeout (>= 1 s in
        # these tests); reusing one idle for longer would race that close, so the client
        # drops pooled connections idle for more than 0.2 s
        self._transport_error = httpx.TransportError
        self.client = httpx.Client(
            base_url=self.url, timeout=60.0, limits=httpx.Limits(keepalive_expiry=0.2)
        )

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stop()[1]}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return self
            except self._transport_error:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.stop()[1]}")

    def stop(self) -> tuple[str, str]:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            self.proc.kill()
            return self.proc.communicate()
