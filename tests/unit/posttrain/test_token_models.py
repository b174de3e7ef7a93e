"""Post-training quantization of token models: ids stay int64 through dynamic and static int8,
float16 and the ONNX Runtime int8 path; a model torch FX cannot quantize gets one clear error."""

from __future__ import annotations

import pytest
import torch
from examples.sequence import TokenLSTM, TokenTransformer

import pqcompress as pqc
from pqcompress.cli.main import main
from pqcompress.errors import ConfigError
from pqcompress.posttrain.quantize import (
    calibration_args,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_float16,
)

IDS = torch.randint(0, 256, (6, 24), generator=torch.Generator().manual_seed(0))


def _small_lstm(num_classes: int = 4, **_: object) -> TokenLSTM:
    return TokenLSTM(num_classes, dim=8, hidden=16, layers=1)


def _small_transformer() -> TokenTransformer:
    return TokenTransformer(4, max_len=24, dim=16, heads=2, layers=1, ff=32).eval()


def test_dynamic_and_float16_run_token_models():
    for model in (_small_lstm().eval(), _small_transformer()):
        want = model(IDS)
        for quantized in (quantize_dynamic_int8(model), to_float16(model)):
            got = quantized(IDS)
            assert got.dtype == torch.float32 and (got - want).abs().max() < 0.05
    # the transformer's MHA fast path is off only while the quantized model runs
    assert torch.backends.mha.get_fastpath_enabled()


def test_static_int8_keeps_ids_integer_and_refuses_what_fx_cannot_quantize():
    model = _small_lstm().eval()
    q = quantize_static_int8(model, [IDS, (IDS, torch.zeros(6))])
    assert (q(IDS) - model(IDS)).abs().max() < 0.05
    with pytest.raises(ConfigError, match="use the ONNX Runtime path instead"):
        quantize_static_int8(_small_transformer(), [IDS])
    spec = [pqc.InputSpec("tokens", "int64", ("batch", "seq"))]
    assert calibration_args({"tokens": IDS}, spec)[0].dtype == torch.int64
    with pytest.raises(ConfigError, match="lacks inputs"):
        calibration_args({"ids": IDS}, spec)


@pytest.mark.requires("onnx", "onnxruntime")
def test_cli_posttrain_ort_int8_of_a_token_file(tmp_path, capsys):
    """A .pqz saved from a user's token model with its spec: `posttrain --quantize ort-int8`
    calibrates on the token dataset and writes a graph that takes int64 'tokens'."""
    import onnxruntime as ort

    model = _small_lstm(8).eval()
    spec = [pqc.InputSpec("tokens", "int64", ("batch", "seq"), low=0, high=256)]
    src = pqc.save(model, tmp_path / "lstm.pqz", inputs=spec, num_classes=8,
                   model_name="tests.unit.posttrain.test_token_models:_small_lstm")  # fmt: skip
    out = tmp_path / "lstm-int8.onnx"
    code = main(["posttrain", str(src), "--model", "tests.unit.posttrain.test_token_models:_small_lstm",
                 "--quantize", "ort-int8", "--calibration-dataset", "modulation-tokens",
                 "--calibration-batches", "2", "-o", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    s = ort.InferenceSession(str(out))
    assert [(i.name, i.type) for i in s.get_inputs()] == [("tokens", "tensor(int64)")]
    (got,) = s.run(None, {"tokens": IDS.numpy()})
    assert (torch.from_numpy(got).argmax(1) == model(IDS).argmax(1)).float().mean() >= 0.5
    pt = tmp_path / "lstm-dyn.pt"
    code = main(["posttrain", str(src), "--model", "tests.unit.posttrain.test_token_models:_small_lstm",
                 "--quantize", "dynamic", "-o", str(pt)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    scripted = torch.jit.load(str(pt))
    assert (scripted(IDS) - model(IDS)).abs().max() < 0.05
