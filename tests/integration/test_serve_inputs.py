"""A model with named inputs served for real: a two-input token classifier (int64 ids and an
attention mask) and a dict-output model, saved with ``inputs=`` and driven over HTTP (JSON
by name, .npz, .npy) on both runtimes; bad inputs get one 4xx naming what is wrong."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from tests.integration.serve_support import Server
from torch import nn

pytestmark = pytest.mark.requires("fastapi", "uvicorn", "httpx", "onnx", "onnxruntime")

VOCAB, SEQ = 40, 12


class TokenClassifier(nn.Module):
    """Embedding, one head of self-attention written out (as BERT-style models do) with a
    padding mask, masked mean pooling, a linear head."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.qkv = nn.Linear(16, 48)
        self.head = nn.Linear(16, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / 4.0
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, -1e4)
        h = h + torch.softmax(scores, -1) @ v
        keep = attention_mask.to(h.dtype).unsqueeze(-1)
        return self.head((h * keep).sum(1) / keep.sum(1).clamp_min(1.0))


class TwoHeads(nn.Module):
    """A dict of two tensors: per-position scores and a pooled vector (not class logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.proj = nn.Linear(8, 4)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.proj(self.embed(input_ids))
        return {"scores": h, "pooled": h.mean(1)}


SPECS = [
    {"name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"], "low": 0, "high": VOCAB},
    {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "seq"], "low": 0, "high": 2},
]


def _tokens(n: int, seq: int = SEQ, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(n, seq)).astype(np.int64)
    mask = np.ones((n, seq), dtype=np.int64)
    mask[:, seq - 3 :] = rng.integers(0, 2, size=(n, 3))  # some padding at the end
    return ids, mask


@pytest.fixture(scope="module")
def token_model(tmp_path_factory):
    import pqcompress as pqc

    torch.manual_seed(0)
    model = TokenClassifier()
    cfg = pqc.CompressionConfig(
        form="uniform", bits=8, alpha=0.5, layer_types=("Linear", "Embedding")
    )
    comp = pqc.Compressor(model, cfg)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for step in range(20):
        ids, mask = _tokens(16, seed=step)
        y = torch.from_numpy(ids[:, 0] % 3)
        opt.zero_grad()
        nn.functional.cross_entropy(
            model(torch.from_numpy(ids), torch.from_numpy(mask)), y
        ).backward()
        opt.step()
        comp.step()
    model.eval()
    assert all(r.compressed for r in comp.coverage() if r.name.endswith("weight"))
    calib = [
        dict(zip(("input_ids", "attention_mask"), map(torch.from_numpy, _tokens(8, seed=s))))
        for s in range(3)
    ]
    path = tmp_path_factory.mktemp("token") / "token.pqz"
    pqc.save(model, path, compressor=comp, inputs=SPECS, num_classes=3,
             class_names=["a", "b", "c"], onnx="all", calibration=calib)  # fmt: skip
    return model, path


@pytest.fixture(scope="module")
def token_server(token_model):
    srv = Server(token_model[1], "--no-int8", "--max-batch", "8", "--max-dim", "64").wait_ready()
    yield srv
    srv.stop()


def _torch_probs(model, ids, mask) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(ids), torch.from_numpy(mask)), 1).numpy()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_named_json_and_npz_match_torch(token_server, token_model):
    model, _ = token_model
    ids, mask = _tokens(5, seed=99)
    want = _torch_probs(model, ids, mask)
    r = token_server.client.post(
        "/v1/predict", json={"inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}}
    )
    assert r.status_code == 200, r.text
    got = np.array([p["probabilities"] for p in r.json()["predictions"]])
    assert np.abs(got - want).max() <= 1e-4
    assert r.json()["labels"] == want.argmax(1).tolist()
    r = token_server.client.post(
        "/v1/predict",
        content=_npz(input_ids=ids, attention_mask=mask),
        headers={"content-type": "application/x-npz"},
    )
    assert r.status_code == 200, r.text
    assert (
        np.abs(np.array([p["probabilities"] for p in r.json()["predictions"]]) - want).max() <= 1e-4
    )


def test_another_sequence_length_is_served(token_server, token_model):
    model, _ = token_model
    ids, mask = _tokens(2, seq=30, seed=5)  # the graph's seq axis is dynamic
    r = token_server.client.post(
        "/v1/predict", json={"inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == _torch_probs(model, ids, mask).argmax(1).tolist()


def test_model_summary_and_openapi_show_the_spec(token_server):
    info = token_server.client.get("/v1/model").json()
    assert [s["name"] for s in info["inputs"]] == ["input_ids", "attention_mask"]
    assert info["inputs"][0] == SPECS[0]
    assert info["task"] == "classification" and info["class_names"] == ["a", "b", "c"]
    body = token_server.client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    content = body["requestBody"]["content"]
    assert "application/x-npz" in content
    schema = content["application/json"]["schema"]
    assert schema["x-pqcompress-inputs"] == SPECS
    assert schema["properties"]["inputs"]["required"] == ["input_ids", "attention_mask"]


@pytest.mark.parametrize(
    "inputs, status, words",
    [
        ({"input_ids": [[1, 2, 3]]}, 422, ["missing", "attention_mask"]),
        (
            {"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1, 1]], "x": [[1]]},
            422,
            ["unexpected", "'x'"],
        ),
        (
            {"input_ids": [[1, 2, VOCAB]], "attention_mask": [[1, 1, 1]]},
            422,
            ["input_ids", f"below {VOCAB}"],
        ),
        ({"input_ids": [[1, 2.5, 3]], "attention_mask": [[1, 1, 1]]}, 422, ["whole numbers"]),
        ({"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1]]}, 422, ["axis 'seq'", "agree"]),
        (
            {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1]},
            422,
            ["1 dimensions", "expected 2"],
        ),
        ({"input_ids": [[1] * 65], "attention_mask": [[1] * 65]}, 422, ["65", "1 to 64"]),
        ({"input_ids": [[1]] * 9, "attention_mask": [[1]] * 9}, 422, ["9 inputs", "1 to 8"]),
        ({"input_ids": [[1, "a"]], "attention_mask": [[1, 1]]}, 422, ["rectangular", "numbers"]),
        ([[1, 2, 3]], 422, ["object mapping each input name"]),
    ],
)
def test_bad_named_inputs_get_one_clear_4xx(token_server, inputs, status, words):
    r = token_server.client.post("/v1/predict", json={"inputs": inputs})
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    for w in words:
        assert w in message, message


def test_images_npy_and_bad_npz_are_refused_with_the_spec(token_server):
    r = token_server.client.post(
        "/v1/predict", content=b"\x89PNG\r\n\x1a\n", headers={"content-type": "image/png"}
    )
    assert r.status_code == 415 and "input_ids: int64" in r.json()["error"]["message"]
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 3), np.int64))
    r = token_server.client.post(
        "/v1/predict", content=buf.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert r.status_code == 415 and ".npz" in r.json()["error"]["message"]
    ids, mask = _tokens(1)
    too_many = _npz(input_ids=ids, attention_mask=mask, extra=mask)
    r = token_server.client.post(
        "/v1/predict", content=too_many, headers={"content-type": "application/x-npz"}
    )
    assert r.status_code == 422 and "holds 3 arrays" in r.json()["error"]["message"]
    r = token_server.client.post(
        "/v1/predict", content=b"PK\x03\x04broken", headers={"content-type": "application/x-npz"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_npz"
    # a member whose .npy header declares more than it holds: refused before allocation
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (1, 10**9)}
    )
    liar = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(liar, "w") as zf:
        zf.writestr("input_ids.npy", header.getvalue() + b"\0" * 64)
        zf.writestr("attention_mask.npy", header.getvalue() + b"\0" * 64)
    r = token_server.client.post(
        "/v1/predict", content=liar.getvalue(), headers={"content-type": "application/x-npz"}
    )
    assert r.status_code == 422 and "declares shape" in r.json()["error"]["message"]


def test_int8_graph_agrees_with_torch(token_model):
    model, path = token_model
    srv = Server(path, "--int8", "--max-batch", "64").wait_ready()
    try:
        assert srv.client.get("/v1/model").json()["int8"] is True
        agree = total = 0
        for seed in range(4):
            ids, mask = _tokens(64, seed=100 + seed)
            r = srv.client.post(
                "/v1/predict",
                json={"inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}},
            )
            assert r.status_code == 200, r.text
            agree += int(
                (np.array(r.json()["labels"]) == _torch_probs(model, ids, mask).argmax(1)).sum()
            )
            total += len(ids)
        assert agree / total >= 0.95, f"{agree}/{total}"
    finally:
        srv.stop()


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_dict_outputs_are_returned_as_tensors(tmp_path, runtime):
    import pqcompress as pqc

    torch.manual_seed(1)
    model = TwoHeads().eval()
    path = pqc.save(
        model,
        tmp_path / "two.pqz",
        inputs=[pqc.InputSpec("input_ids", "int64", ("batch", "seq"), high=VOCAB)],
        onnx="float32",
    )
    factory = (
        ("--model", "tests.integration.test_serve_inputs:TwoHeads") if runtime == "torch" else ()
    )
    srv = Server(path, "--runtime", runtime, *factory).wait_ready()
    try:
        info = srv.client.get("/v1/model").json()
        assert info["task"] == "tensors"
        assert [o["name"] for o in info["outputs"]] == ["scores", "pooled"]
        ids = np.arange(10, dtype=np.int64).reshape(2, 5)
        r = srv.client.post("/v1/predict", json={"inputs": ids.tolist()})  # one input: a list
        assert r.status_code == 200, r.text
        out = r.json()["outputs"]
        with torch.no_grad():
            want = model(torch.from_numpy(ids))
        for name in ("scores", "pooled"):
            assert np.abs(np.array(out[name]) - want[name].numpy()).max() <= 1e-5
        assert "predictions" not in r.json()
    finally:
        srv.stop()


def test_a_bare_onnx_graph_with_token_inputs_is_served(tmp_path, token_model):
    import pqcompress as pqc

    model, _ = token_model
    path = pqc.export_onnx(model, tmp_path / "token.onnx", inputs=SPECS)
    srv = Server(path).wait_ready()
    try:
        info = srv.client.get("/v1/model").json()
        assert [(s["name"], s["dtype"], s["shape"]) for s in info["inputs"]] == [
            ("input_ids", "int64", ["batch", "seq"]),
            ("attention_mask", "int64", ["batch", "seq"]),
        ]
        ids, mask = _tokens(3, seed=7)
        r = srv.client.post(
            "/v1/predict",
            content=json.dumps(
                {"inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}}
            ),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        # no class count is recorded in a bare graph: its output comes back as a tensor
        logits = np.array(r.json()["outputs"]["logits"])
        with torch.no_grad():
            want = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        assert np.abs(logits - want).max() <= 1e-4
    finally:
        srv.stop()


def test_loadtest_makes_its_payloads_from_the_spec(token_server, tmp_path):
    """`pqcompress loadtest --from-spec` reads the inputs at /v1/model and sends valid
    bodies: every request is answered 200."""
    import importlib.util
    import subprocess
    import sys

    # never import locust here: it patches the standard library for gevent on import
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed (pip install pqcompress[load])")

    from pqcompress.loadtest.payloads import spec_payloads

    bodies = spec_payloads(token_server.url, 3, sizes={"seq": 20}, seed=1)
    sent = json.loads(bodies[0][0])["inputs"]
    assert set(sent) == {"input_ids", "attention_mask"}
    ids = np.array(sent["input_ids"])
    assert ids.shape == (1, 20) and ids.min() >= 0 and ids.max() < VOCAB
    out = tmp_path / "lt"
    cmd = [sys.executable, "-m", "pqcompress", "loadtest", token_server.url, "--from-spec",
           "--axis", "seq=20", "--profile", "rate", "--rps", "8", "--duration", "2",
           "--prometheus", "off", "--payload-count", "16", "-o", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == summary["requests"] > 5 and summary["errors_total"] == 0
    bad = subprocess.run(
        [*cmd[:5], "--from-spec", "--axis", "seq", "-o", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "expected NAME=SIZE" in bad.stderr


def test_spec_payloads_of_a_one_tensor_model_are_plain_arrays(tmp_path):
    """A model of one float input (no named inputs): the bodies --from-spec makes are
    `{"inputs": [...]}` of its input_shape, which the service answers with labels."""
    import pqcompress as pqc
    from pqcompress.loadtest.payloads import spec_payloads

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    path = pqc.save(model, tmp_path / "f.pqz", input_shape=(3, 4), num_classes=3, onnx="float32")
    srv = Server(path).wait_ready()
    try:
        bodies = spec_payloads(srv.url, 2, seed=0)
        assert np.array(json.loads(bodies[0][0])["inputs"]).shape == (1, 3, 4)
        r = srv.client.post(
            "/v1/predict", content=bodies[0][0], headers={"content-type": bodies[0][1]}
        )
        assert r.status_code == 200, r.text
    finally:
        srv.stop()
