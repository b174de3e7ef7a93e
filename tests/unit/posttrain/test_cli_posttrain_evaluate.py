"""``pqcompress evaluate`` / ``posttrain`` and ``export --format onnx`` (cli/evaluate.py, cli/posttrain.py)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from pqcompress import codec
from pqcompress.aware.compressor import Compressor
from pqcompress.cli import evaluate, export, posttrain
from pqcompress.config import CompressionConfig, DataConfig
from pqcompress.data import build_dataset, make_loader
from pqcompress.errors import ConfigError
from pqcompress.models.registry import build_model


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pqcompress")
    sub = parser.add_subparsers(dest="command")
    evaluate.register(sub)
    posttrain.register(sub)
    export.register(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def pqz(tmp_path_factory):
    """cnn5 (width 0.25) on digits, one epoch, uniform 8-bit P->Q, saved as .pqz."""
    torch.manual_seed(0)
    data = build_dataset("digits", DataConfig(augment=False))
    model = build_model("cnn5", num_classes=10, input_shape=(1, 8, 8), width=0.25, dropout=0.0)
    comp = Compressor(model, CompressionConfig(form="uniform", bits=8, alpha=0.3, backend="torch"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in make_loader(data.train, 64, shuffle=True):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        comp.step()
    comp.apply()
    path = tmp_path_factory.mktemp("deploy") / "cnn5.pqz"
    return codec.save(
        model.eval(),
        path,
        comp,
        model_name="cnn5",
        model_args={"width": 0.25, "dropout": 0.0},
        num_classes=10,
        input_shape=(1, 8, 8),
        class_names=data.class_names,
    )


def test_evaluate_pqz_json(pqz, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert _run("evaluate", str(pqz), "--dataset", "digits", "--json", str(out)) == 0
    report = json.loads(out.read_text())
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"):
        assert key in report
    assert report["n"] == sum(map(sum, report["confusion_matrix"]))
    assert report["accuracy"] > 0.3
    text = capsys.readouterr().out
    assert "confusion matrix" in text and "accuracy" in text


def test_posttrain_prune_pqz_keeps_codes(pqz, tmp_path):
    out = tmp_path / "p.pqz"
    assert _run("posttrain", str(pqz), "--prune", "l1", "--amount", "0.5", "-o", str(out)) == 0
    manifest, tensors = codec.read(out)
    coded = [e for e in manifest["tensors"] if e.get("encoding") == "codes"]
    assert coded  # pruned values stay on their grid: still stored as codes
    w = [t for n, t in tensors.items() if n.endswith("weight") and t.dim() > 1]
    assert all(float((t == 0).float().mean()) >= 0.49 for t in w)
    model = codec.load(out)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert _run("evaluate", str(out), "--dataset", "digits", "--limit", "50") == 0


def test_posttrain_ort_int8_and_evaluate(pqz, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "q.onnx"
    code = _run(
        "posttrain",
        str(pqz),
        "--quantize",
        "ort-int8",
        "--calibration-dataset",
        "digits",
        "--calibration-batches",
        "2",
        "-o",
        str(out),
    )
    assert code == 0 and out.is_file()
    j = tmp_path / "q.json"
    assert _run("evaluate", str(out), "--dataset", "digits", "--json", str(j)) == 0
    j2 = tmp_path / "f.json"
    _run("evaluate", str(pqz), "--dataset", "digits", "--json", str(j2))
    acc_q = json.loads(j.read_text())["accuracy"]
    acc_f = json.loads(j2.read_text())["accuracy"]
    assert acc_q >= acc_f - 0.05


def test_posttrain_torch_dynamic_and_fp16(pqz, tmp_path):
    out = tmp_path / "d.pt"
    assert _run("posttrain", str(pqz), "--quantize", "dynamic", "-o", str(out)) == 0
    m = torch.jit.load(str(out))
    assert m(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    out16 = tmp_path / "h.pqz"
    assert _run("posttrain", str(pqz), "--quantize", "fp16", "-o", str(out16)) == 0
    assert codec.read(out16)[0]["float_dtype"] == "float16"


def test_posttrain_errors(pqz, tmp_path):
    with pytest.raises(ConfigError):
        _run("posttrain", str(pqz), "-o", str(tmp_path / "x.pqz"))
    with pytest.raises(ConfigError):
        _run("posttrain", str(pqz), "--quantize", "static", "-o", str(tmp_path / "x.pt"))
    with pytest.raises(ConfigError):
        _run(
            "posttrain",
            str(pqz),
            "--prune",
            "l1",
            "--amount",
            "0.2",
            "-o",
            str(tmp_path / "x.onnx"),
        )


def test_export_format_onnx_from_pqz(pqz, tmp_path):
    pytest.importorskip("onnxruntime")
    from pqcompress.export import load_onnx

    out = tmp_path / "f.onnx"
    assert _run("export", str(pqz), "--format", "onnx", "-o", str(out)) == 0
    model = codec.load(pqz)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(load_onnx(out)(x), model(x), atol=1e-4)
    out8 = tmp_path / "q.onnx"
    args = ["export", str(pqz), "--format", "onnx", "--int8", "-o", str(out8)]
    with pytest.raises(ConfigError):
        _run(*args)
    assert _run(*args, "--calibration-dataset", "digits", "--calibration-batches", "2") == 0


def test_run_directory_to_onnx_and_posttrain(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from pqcompress.cli.main import main
    from pqcompress.export import weight_codes

    run = tmp_path / "run"
    args = ["train", "--model", "cnn5", "--dataset", "digits", "--epochs", "1", "--subset", "300"]
    args += ["--alpha", "0.5", "--bits", "8", "--form", "uniform", "--out", str(run)]
    assert main([*args, "--no-progress"]) == 0
    out = tmp_path / "run.onnx"
    code = _run(
        "export", str(run), "--format", "onnx", "--int8", "--calibration-dataset", "digits",
        "--calibration-batches", "2", "-o", str(out),
    )  # fmt: skip
    assert code == 0
    manifest, _ = codec.read(codec.export_run(run, tmp_path / "run.pqz"))
    n_codes = sum(e.get("encoding") == "codes" for e in manifest["tensors"])
    assert len(weight_codes(out)) == n_codes > 0  # every uniform 8-bit weight kept its codes
    pruned = tmp_path / "pruned.pqz"
    assert _run("posttrain", str(run), "--prune", "std", "--amount", "1.0", "-o", str(pruned)) == 0
    assert codec.load(pruned)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    capsys.readouterr()
