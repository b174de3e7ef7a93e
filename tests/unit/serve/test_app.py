"""The app in process (no server, a numpy stand-in model): readiness, routes, OpenAPI, imports."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pqcompress.serve.preprocess import Preprocessing
from pqcompress.serve.runtime import ServedModel

# every test here builds the app (fastapi, prometheus_client) or talks to it through
# starlette's TestClient (httpx): each is skipped on its own when one is missing, so the app's
# modules are imported inside the tests
pytestmark = pytest.mark.requires("fastapi", "prometheus_client", "httpx")

DOCS_OPENAPI = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def _fake_model() -> ServedModel:
    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10

    def logits(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1) @ weights

    pre = Preprocessing.from_manifest((1, 2, 2), None)
    info = {"architecture": {"name": "fake"}, "runtime": "onnxruntime", "int8": False,
            "num_classes": 3, "class_names": ["a", "b", "c"], "input_shape": [1, 2, 2]}  # fmt: skip
    return ServedModel(logits, pre, ["a", "b", "c"], info)


def _openapi_spec() -> dict:
    from pqcompress.serve.openapi import openapi_spec

    return openapi_spec()


@pytest.fixture
def client():
    from pqcompress.serve.app import create_app
    from pqcompress.serve.settings import ServeSettings

    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(ServeSettings(model="unused.pqz", max_batch=2), load_model=False)
    return app, TestClient(app)


def test_not_ready_until_a_model_is_set(client):
    app, c = client
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    r = c.post("/v1/predict", json={"inputs": [[[0, 0], [0, 0]]]})
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    assert "Retry-After" in r.headers
    app.state.service.model = _fake_model()
    assert c.get("/readyz").status_code == 200
    r = c.post("/v1/predict", json={"inputs": [[[[1, 0], [0, 0]]], [[[0, 0], [0, 1]]]]})
    assert r.status_code == 200
    assert r.json()["labels"] == [2, 2] and r.json()["class_names"] == ["c", "c"]
    app.state.service.draining = True
    assert c.get("/readyz").json()["status"] == "draining"


def test_load_failure_is_reported_by_readyz(client):
    app, c = client
    app.state.service.load_error = "cannot load model 'x.pqz': FormatError: bad"
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "failed"
    assert "FormatError" in r.json()["detail"]


def test_metrics_use_route_templates_not_raw_paths(client):
    _, c = client
    for path in ("/a", "/b", "/c"):
        c.get(path)
    text = c.get("/metrics").text
    assert 'route="unmatched"' in text and 'route="/a"' not in text


def test_docs_openapi_is_current():
    """docs/openapi.json is what the service serves: regenerate with
    python -m pqcompress.serve.openapi docs/openapi.json"""
    assert json.loads(DOCS_OPENAPI.read_text()) == json.loads(json.dumps(_openapi_spec()))


def test_predict_documents_every_input_kind():
    body = _openapi_spec()["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {
        "multipart/form-data", "image/png", "image/jpeg", "application/json",
        "application/x-npy", "application/octet-stream", "application/x-npz",
    }  # fmt: skip


def test_serving_modules_do_not_import_torch():
    code = (
        "import sys; from pqcompress.cli.main import build_parser; build_parser(); "
        "import pqcompress.serve.server, pqcompress.serve.openapi, pqcompress.codec.portable; "
        "bad = [m for m in ('torch', 'numba') if m in sys.modules]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
