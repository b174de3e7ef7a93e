"""export_run from a real (tiny) training run, and the export/inspect CLI commands."""

from __future__ import annotations

import argparse

import pytest
import torch

from pqcompress import codec
from pqcompress.checkpoint import load_checkpoint
from pqcompress.cli import export as cli_export
from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig
from pqcompress.errors import CheckpointError, ConfigError
from pqcompress.train.trainer import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    cfg = ExperimentConfig(
        model="student_cnn",
        dataset="digits",
        train=TrainConfig(
            epochs=2, batch_size=32, max_steps_per_epoch=2, device="cpu", threads=1, lr=0.01
        ),
        compression=CompressionConfig(alpha=0.5, bits=4),
    )
    train(cfg, out, progress=False)
    return out


@pytest.mark.parametrize("which", ["best", "last"])
def test_export_run_round_trips_the_checkpoint(run_dir, tmp_path, which):
    path = codec.export_run(run_dir, tmp_path / "m.pqz", which=which)
    ckpt = load_checkpoint(run_dir / ("best.pt" if which == "best" else "checkpoint.pt"))
    model = codec.load(path)
    for name, t in ckpt["model"].items():
        assert torch.equal(model.state_dict()[name], t), name
    manifest, _ = codec.read(path)
    assert manifest["model"]["name"] == "student_cnn"
    assert manifest["model"]["num_classes"] == ckpt["num_classes"]
    assert manifest["class_names"] == ckpt["class_names"]
    encodings = {e["name"]: e["encoding"] for e in manifest["tensors"]}
    assert encodings["features.0.weight"] == "codes"


def test_export_a_checkpoint_file_with_fixed_layout(run_dir, tmp_path):
    path = codec.export_run(
        run_dir / "checkpoint.pt", tmp_path / "m.pqz", layout="dense", codec="deflate"
    )
    manifest, _ = codec.read(path)
    assert {e["layout"] for e in manifest["tensors"]} == {"dense"}
    assert {s["codec"] for e in manifest["tensors"] for s in e["sections"]} == {"deflate"}


def test_export_refusals(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        codec.export_run(tmp_path, tmp_path / "m.pqz")
    with pytest.raises(ConfigError, match="which"):
        codec.export_run(run_dir, tmp_path / "m.pqz", which="first")
    old = load_checkpoint(run_dir / "best.pt")
    for key in ("compressor_applied", "num_classes", "input_shape"):
        old.pop(key)
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="num_classes"):
        codec.export_run(tmp_path / "old.pt", tmp_path / "m.pqz")
    with pytest.raises(CheckpointError, match="no compressor parameters"):
        codec.export_run(
            tmp_path / "old.pt", tmp_path / "m.pqz", num_classes=10, input_shape=(1, 8, 8)
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pqcompress")
    cli_export.register(p.add_subparsers(dest="command"))
    return p


@pytest.mark.requires("onnx", "onnxruntime")  # the embedded graphs
def test_cli_export_and_inspect(run_dir, tmp_path, capsys):
    out = tmp_path / "cli.pqz"
    args = parser().parse_args(["export", str(run_dir), "-o", str(out), "--codec", "zstd"])
    assert args.func(args) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    args = parser().parse_args(["inspect", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "features.0.weight" in text and "dense int8 + Deflate" in text and "float32" in text


@pytest.mark.requires("onnx", "onnxruntime")  # the embedded graphs
def test_export_embeds_graphs_by_default(run_dir, tmp_path, capsys):
    from pqcompress.codec import portable

    path = codec.export_run(run_dir, tmp_path / "m.pqz")  # exact form: float32 graph only
    assert [g["name"] for g in portable.read_manifest(path)["graphs"]] == ["float32"]
    out = tmp_path / "none.pqz"
    args = parser().parse_args(["export", str(run_dir), "-o", str(out), "--onnx", "none"])
    assert args.func(args) == 0
    assert "graphs: none" in capsys.readouterr().out
    manifest = portable.read_manifest(out)
    assert "graphs" not in manifest and manifest["format_version"] == 3  # small: one digest


@pytest.mark.requires("onnx", "onnxruntime")  # the embedded graphs
def test_export_uniform_run_embeds_the_int8_graph(tmp_path_factory, capsys):
    from pqcompress.codec import portable

    run = tmp_path_factory.mktemp("run") / "u"
    cfg = ExperimentConfig(
        model="student_cnn",
        dataset="digits",
        train=TrainConfig(
            epochs=1, batch_size=32, max_steps_per_epoch=2, device="cpu", threads=1, lr=0.01
        ),
        compression=CompressionConfig(alpha=0.5, bits=8, form="uniform"),
    )
    train(cfg, run, progress=False)
    out = run / "m.pqz"
    args = parser().parse_args(["export", str(run), "-o", str(out), "--calibration-batches", "2"])
    assert args.func(args) == 0
    assert "int8 (" in capsys.readouterr().out  # calibrated on the run's dataset (digits)
    info = portable.model_info(out)
    assert info["default_graph"] == "int8" and info["compression"]["alpha"] == 0.5
    assert info["architecture"]["name"] == "student_cnn" and info["class_names"]


def test_post_training_run_exports_its_compressed_model(tmp_path):
    """schedule: post compresses once after training: export (which=best or post) stores
    that model as codes, and it scores what the run reported as its post accuracy."""
    from pqcompress.data.batches import split_loader
    from pqcompress.metrics.classification import evaluate_model

    out = tmp_path / "post-run"
    cfg = ExperimentConfig(
        model="student_cnn",
        dataset="digits",
        train=TrainConfig(
            epochs=2, batch_size=32, max_steps_per_epoch=3, device="cpu", threads=1, lr=0.05
        ),
        compression=CompressionConfig(alpha=0.8, bits=4, schedule="post"),
    )
    result = train(cfg, out, progress=False)
    assert result.post is not None and result.post["density"] < 0.8
    for which in ("best", "post"):
        path = codec.export_run(out, tmp_path / f"{which}.pqz", which=which)
        manifest, _ = codec.read(path)
        assert manifest["metadata"]["source"].endswith("post.pt")
        encodings = {e["name"]: e["encoding"] for e in manifest["tensors"]}
        assert encodings["features.0.weight"] == "codes"
    model = codec.load(path)
    post = load_checkpoint(out / "post.pt")
    for name, t in post["model"].items():
        assert torch.equal(model.state_dict()[name], t), name
    loader, _ = split_loader("digits", "test")
    scored = evaluate_model(model, loader, "cpu")
    assert scored["accuracy"] == pytest.approx(result.post["test_acc"], abs=1e-9)


@pytest.mark.requires("onnx", "onnxruntime")  # the embedded graphs
def test_export_opset_and_integrity_reach_the_file(run_dir, tmp_path, capsys):
    import onnx

    from pqcompress.codec import portable

    out = tmp_path / "o.pqz"
    args = parser().parse_args(
        ["export", str(run_dir), "-o", str(out), "--opset", "15", "--integrity", "sections"]
    )
    assert args.func(args) == 0
    manifest = portable.read_manifest(out)
    assert manifest["format_version"] == 2  # a graph, and one digest per section
    graph = onnx.load_from_string(portable.onnx_model_bytes(out, int8=False))
    assert {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")} == {15}


def test_inspect_of_a_file_without_codes_prints_no_nan(tmp_path, capsys):
    import pqcompress as pqc

    path = tmp_path / "float.pqz"
    pqc.save(torch.nn.ReLU(), path, onnx="none")  # no tensors, so no codes: no bound
    args = parser().parse_args(["inspect", str(path)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "nan" not in text.lower() and "stores no integer codes" in text
    assert "0 elements" in text and "zeros" not in text


def test_export_writes_a_255_byte_output_name(run_dir, tmp_path):
    name = "m" * 251 + ".pqz"  # the longest valid file name
    args = parser().parse_args(
        ["export", str(run_dir), "-o", str(tmp_path / name), "--onnx", "none"]
    )
    assert args.func(args) == 0
    assert (tmp_path / name).is_file() and [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.requires("onnx", "onnxruntime")
def test_the_output_extension_decides_the_format(run_dir, tmp_path, capsys):
    import onnx

    out = tmp_path / "model.onnx"
    args = parser().parse_args(["export", str(run_dir), "-o", str(out)])
    assert args.func(args) == 0
    onnx.checker.check_model(onnx.load(str(out)))  # a real ONNX graph, not a .pqz named .onnx
    int8 = tmp_path / "int8.onnx"  # --int8 calibrates on the run's own dataset by default
    args = parser().parse_args(["export", str(run_dir), "-o", str(int8), "--int8"])
    assert args.func(args) == 0
    onnx.checker.check_model(onnx.load(str(int8)))  # no --calibration-dataset was needed


def test_readme_save_and_load_of_a_registry_model_round_trip(tmp_path):
    """README's own lines: build_model, a Compressor, save without model_name, load."""
    import pqcompress as pqc
    from pqcompress.models import build_model

    model = build_model("cnn5", width=0.25)
    comp = pqc.Compressor(model, pqc.CompressionConfig(alpha=0.5, bits=4))
    comp.apply()
    pqc.save(model, tmp_path / "api.pqz", compressor=comp)
    loaded = pqc.load(tmp_path / "api.pqz")
    assert type(loaded).__name__ == type(model).__name__
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_export_best_exports_again_only_when_the_best_epoch_is_newer(run_dir, tmp_path):
    import os

    pqz = codec.export_best(run_dir, tmp_path / "sub" / "m.pqz", onnx="none")
    first = pqz.stat().st_mtime_ns
    assert codec.load(pqz) is not None
    assert codec.export_best(run_dir, pqz, onnx="none").stat().st_mtime_ns == first  # reused
    best = run_dir / "best.pt"
    later = first + 10**9
    os.utime(best, ns=(later, later))  # a newer best epoch
    assert codec.export_best(run_dir, pqz, onnx="none").stat().st_mtime_ns != first


def test_exporting_a_run_does_not_repeat_its_collapse_warning(tmp_path, caplog):
    """A 2-bit run at alpha 0 is warned about once, when it trains; rebuilding its compressor
    to export it says nothing more (a search evaluation used to log the warning twice)."""
    cfg = ExperimentConfig(
        model="student_cnn",
        dataset="digits",
        train=TrainConfig(
            epochs=1, batch_size=32, max_steps_per_epoch=2, device="cpu", threads=1, lr=0.01
        ),
        compression=CompressionConfig(alpha=0.0, bits=2),
    )

    def warnings() -> int:
        text = [r.getMessage() for r in caplog.records]
        return sum("rounds most weights to 0" in m for m in text)

    with caplog.at_level("WARNING", logger="pqcompress.aware"):
        train(cfg, tmp_path / "r", progress=False)
        assert warnings() == 1
        codec.export_run(tmp_path / "r", tmp_path / "m.pqz", onnx="none")
    assert warnings() == 1
