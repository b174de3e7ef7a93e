"""save(..., shrink=True): the channels a channel-granularity run pruned are removed, the file
records the smaller shapes, load/load_into rebuild the shrunk layers without Torch-Pruning, and
the embedded ONNX graphs are the shrunk model."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pqcompress as pqc
from pqcompress.aware.compressor import Compressor
from pqcompress.codec import portable
from pqcompress.codec.errors import FormatError
from pqcompress.config import CompressionConfig
from pqcompress.errors import ConfigError
from pqcompress.models import build_model

needs_tp = pytest.mark.skipif(
    importlib.util.find_spec("torch_pruning") is None, reason="needs the channels extra"
)

X = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _mobilenet(num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32)) -> nn.Module:
    from examples.mobilenet import build

    return build(num_classes=num_classes, input_shape=input_shape, width=0.25)


def _registry(name: str) -> Callable[[], nn.Module]:
    return lambda: build_model(name, num_classes=10, input_shape=(3, 32, 32))


def _pruned(make: Callable[[], nn.Module]) -> tuple[nn.Module, Compressor]:
    torch.manual_seed(0)
    model = make()
    cfg = CompressionConfig(bits=8, form="uniform", granularity="channel", target_flops=0.5)
    comp = Compressor(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    y = torch.randint(0, 10, (6,))
    for _ in range(3):
        loss = F.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
    return model.eval(), comp


@needs_tp
@pytest.mark.parametrize("name", ["cnn5", "resnet20", "mobilenet"])
def test_shrunk_file_round_trips_with_the_unshrunk_outputs(tmp_path, name: str) -> None:
    make = _mobilenet if name == "mobilenet" else _registry(name)
    model, comp = _pruned(make)
    with torch.no_grad():
        ref = model(X)
    path = pqc.save(
        model, tmp_path / "m.pqz", comp, shrink=True, input_shape=(3, 32, 32), onnx="float32"
    )
    info = portable.model_info(path)
    shrunk = info["shrunk"]
    assert shrunk["params_after"] < shrunk["params_before"]
    assert shrunk["macs_after"] == pytest.approx(0.5 * shrunk["macs_before"], rel=0.03)
    assert info["params"] < sum(p.numel() for p in model.state_dict().values())
    # the model is untouched; the file holds the shrunk one
    assert sum(p.numel() for p in model.parameters()) == shrunk["params_before"]
    back = pqc.load(path, model=make) if name == "mobilenet" else pqc.load(path)
    with torch.no_grad():
        assert (back(X) - ref).abs().max() <= 1e-4
    fresh = make()
    pqc.load_into(fresh, path)
    with torch.no_grad():
        assert (fresh.eval()(X) - ref).abs().max() <= 1e-4
    # the codes are the trained ones: the shrunk weights equal the kept rows
    conv = next(m for m in back.modules() if isinstance(m, nn.Conv2d))
    assert (
        conv.out_channels
        < next(m for m in make().modules() if isinstance(m, nn.Conv2d)).out_channels
    )


@needs_tp
def test_shrunk_graphs_match_torch_in_onnx_runtime(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, comp = _pruned(_registry("resnet20"))
    with torch.no_grad():
        ref = model(X).numpy()
    path = pqc.save(model, tmp_path / "m.pqz", comp, shrink=True, onnx="all", calibration=[X])
    for int8, tol in ((False, 1e-4), (True, 0.1)):
        sess = ort.InferenceSession(portable.onnx_model_bytes(path, int8=int8))
        got = sess.run(None, {sess.get_inputs()[0].name: X.numpy()})[0]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= tol * max(1.0, float(np.abs(ref).max()))
    with torch.no_grad():
        top = pqc.load(path)(X).argmax(1).numpy()
    assert (got.argmax(1) == top).mean() >= 0.8  # int8 agrees with the shrunk float model


@needs_tp
def test_loading_a_shrunk_file_needs_no_torch_pruning(tmp_path, monkeypatch) -> None:
    model, comp = _pruned(_registry("cnn5"))
    path = pqc.save(model, tmp_path / "m.pqz", comp, shrink=True)
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with torch.no_grad():
        assert (pqc.load(path)(X) - model(X)).abs().max() <= 1e-4


@needs_tp
def test_a_shrunk_file_refuses_a_model_it_cannot_resize(tmp_path) -> None:
    model, comp = _pruned(_registry("cnn5"))
    path = pqc.save(model, tmp_path / "m.pqz", comp, shrink=True)
    other = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    with pytest.raises(FormatError, match="does not fit"):
        pqc.load_into(other, path)


@needs_tp
def test_shrink_needs_the_inputs(tmp_path) -> None:
    model, comp = _pruned(lambda: _mobilenet())
    with pytest.raises(ConfigError, match="input_shape"):
        pqc.save(model, tmp_path / "m.pqz", comp, shrink=True)


@needs_tp
def test_shrinking_an_element_pruned_model_removes_nothing(tmp_path) -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32)).eval()
    comp = Compressor(model, CompressionConfig(bits=4, alpha=1.0))
    comp.apply()
    path = pqc.save(model, tmp_path / "m.pqz", comp, shrink=True)
    shrunk = portable.model_info(path)["shrunk"]
    assert shrunk["params_after"] == shrunk["params_before"]
    assert shrunk["groups"] == []


def test_without_the_extra_shrink_is_one_error(tmp_path, monkeypatch) -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32)).eval()
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(ConfigError, match=r"pqcompress\[channels\]"):
        pqc.save(model, tmp_path / "m.pqz", shrink=True)
    assert not (tmp_path / "m.pqz").exists()


@needs_tp
def test_a_channel_run_exports_shrunk_by_default(tmp_path) -> None:
    from pqcompress.codec import export_run, inspect
    from pqcompress.config import DataConfig, ExperimentConfig, TrainConfig
    from pqcompress.train import train

    cfg = ExperimentConfig(
        model="cnn5",
        dataset="digits",
        data=DataConfig(val_fraction=0.1),
        train=TrainConfig(epochs=1, batch_size=64, threads=1),
        compression=CompressionConfig(
            bits=8, form="uniform", granularity="channel", target_flops=0.5
        ),
    )
    train(cfg, tmp_path / "run", progress=False)
    shrunk = export_run(tmp_path / "run", tmp_path / "auto.pqz")
    full = export_run(tmp_path / "run", tmp_path / "full.pqz", shrink=False)
    assert portable.model_info(shrunk)["shrunk"] is not None
    assert portable.model_info(full)["shrunk"] is None
    totals = inspect(shrunk, baseline=False)["totals"]
    assert (
        totals["unshrunk_float32_bytes"] == inspect(full, baseline=False)["totals"]["float32_bytes"]
    )
    assert totals["float32_bytes"] < totals["unshrunk_float32_bytes"]
