"""pqcompress beside its peers on one model, one data set, one float32 start and one
fine-tuning budget: PneumoniaMNIST, the distillation study's 4-conv student (width 1.4),
8 float32 epochs (Adam, lr 1e-3), then 4 fine-tuning epochs per method (Adam, lr 5e-4), the
test accuracy at the best validation epoch, seeds 0-2, every method fine-tuned from the same
float32 weights of its seed.

Methods:
- pqcompress P->Q, 4 bits (the default form, alpha 0.5), and 4 bits at 10% density
  (``target_density`` 0.1, ``allocation="magnitude"``, ramped over 2 epochs);
- Brevitas 4-bit QAT (``QuantConv2d``/``QuantLinear``, weights at 4 bits, per-tensor), alone and
  with ``torch.nn.utils.prune`` global L1 magnitude pruning to the same 10% (ramped the same
  way);
- ONNX Runtime static int8 PTQ of the float32 model (no fine-tuning; calibrated on 8 batches).

Artifacts, as each project's docs say to ship them: the ``.pqz`` (weights only, loaded into
the model's class; and with its float32 ONNX graph embedded), Brevitas' QCDQ ONNX export,
the ONNX Runtime int8 QDQ model; each also compressed with zstd. Sizes are compared with
``torch.save(state_dict)`` of the float32 model. Latency: ONNX Runtime, batch 1, one thread,
median of 200, for the artifacts that are ONNX graphs.

    PQCOMPRESS_DATA_DIR=../shared/datasets python benchmarks/peers.py \\
        --table benchmarks/results/peers.md --json benchmarks/results/peers.json

Peers are optional extras of this benchmark only (``pip install brevitas==0.13.4
onnxoptimizer``; Brevitas exports through torch's TorchScript exporter here); a method whose
package is missing is left out with a line saying so. NNCF 3.4.0 is not in the table yet:
``nncf.quantize`` runs on this model, but its ONNX export holds
``org.openvinotoolkit:FakeQuantize`` nodes that ONNX Runtime cannot load, and ``nncf.strip``,
which turns them into standard QDQ, needs torchao, which this benchmark does not install.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FLOAT_EPOCHS, TUNE_EPOCHS, RAMP_EPOCHS, DENSITY = 8, 4, 2, 0.10


def _zstd(data: bytes) -> int:
    import zstandard

    return len(zstandard.ZstdCompressor(level=19).compress(data))


def _loaders(seed: int) -> tuple[Any, Any, Any, Any]:
    from pqcompress.config import DataConfig
    from pqcompress.data import build_dataset, make_loader

    data = build_dataset("pneumonia", DataConfig(val_fraction=0.1), seed=seed)

    def train(epoch: int) -> Any:
        return make_loader(data.train, 64, shuffle=True, seed=seed, epoch=epoch)

    val = make_loader(data.val, 256, shuffle=False)
    test = make_loader(data.test, 256, shuffle=False)
    return data, train, val, test


def _accuracy(model: nn.Module, loader: Any) -> float:
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in loader:
            right += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    return right / total


def _fit(
    model: nn.Module,
    loaders: tuple[Any, Any, Any],
    epochs: int,
    lr: float,
    after_step: Callable[[int], None] | None = None,
) -> tuple[float, dict[str, torch.Tensor]]:
    """Adam; the test accuracy at the best validation epoch and that epoch's weights."""
    train, val, test = loaders
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best_val, best_test, best_state, step = -1.0, 0.0, copy.deepcopy(model.state_dict()), 0
    for epoch in range(epochs):
        model.train()
        for x, y in train(epoch):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if after_step is not None:
                after_step(step)
        v = _accuracy(model, val)
        if v > best_val:
            best_val, best_test = v, _accuracy(model, test)
            best_state = copy.deepcopy(model.state_dict())
    return best_test, best_state


def _ort_latency(blob: bytes, shape: tuple[int, ...]) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.zeros((1, *shape), np.float32)}
    for _ in range(20):
        sess.run(None, feed)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _row(name: str, acc: float, artifact: bytes, kind: str, onnx: bool, shape: tuple) -> dict:
    return {
        "method": name,
        "test_acc": acc,
        "artifact": kind,
        "bytes": len(artifact),
        "zstd_bytes": _zstd(artifact),
        "ort_ms": _ort_latency(artifact, shape) if onnx else None,
    }


# ------------------------------------------------------------------------------ methods
def _pqcompress(start: nn.Module, loaders: tuple, shape: tuple, steps: int, density: bool) -> list:
    import pqcompress as pqc
    from pqcompress.codec import portable

    model = copy.deepcopy(start)
    kw: dict[str, Any] = {"bits": 4}
    if density:
        kw.update(target_density=DENSITY, allocation="magnitude", ramp_steps=RAMP_EPOCHS * steps)
    comp = pqc.Compressor(model, pqc.CompressionConfig(**kw))
    acc, state = _fit(model, loaders, TUNE_EPOCHS, 5e-4, lambda _s: comp.step())
    model.load_state_dict(state)
    comp.apply()  # the codes of the kept epoch's weights (they are on the grid already)
    name = f"pqcompress P->Q 4-bit{', 10% density' if density else ''}"
    with tempfile.TemporaryDirectory() as tmp:
        plain = pqc.save(model, Path(tmp) / "m.pqz", comp).read_bytes()
        graph = pqc.save(model, Path(tmp) / "g.pqz", comp, input_shape=shape, onnx="float32")
        onnx_blob = portable.onnx_model_bytes(graph)
        rows = [
            _row(name, acc, plain, ".pqz (weights)", False, shape),
            _row(name, acc, graph.read_bytes(), ".pqz + float32 graph", False, shape),
        ]
    rows[1]["ort_ms"] = _ort_latency(onnx_blob, shape)
    return rows


def _brevitas_model(start: nn.Module) -> nn.Module:
    import brevitas.nn as qnn

    model = copy.deepcopy(start)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                q = qnn.QuantConv2d(
                    child.in_channels, child.out_channels, child.kernel_size,
                    stride=child.stride, padding=child.padding, bias=child.bias is not None,
                    weight_bit_width=4,
                )  # fmt: skip
            elif isinstance(child, nn.Linear):
                q = qnn.QuantLinear(
                    child.in_features, child.out_features, bias=child.bias is not None,
                    weight_bit_width=4,
                )  # fmt: skip
            else:
                continue
            q.weight.data.copy_(child.weight.data)
            if child.bias is not None:
                q.bias.data.copy_(child.bias.data)
            setattr(parent, name, q)
    return model


def _brevitas(start: nn.Module, loaders: tuple, shape: tuple, steps: int, prune: bool) -> list:
    from brevitas.export import export_onnx_qcdq

    model = _brevitas_model(start)
    hook = None
    if prune:
        import torch.nn.utils.prune as tprune

        targets = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        ramp = RAMP_EPOCHS * steps

        def hook(step: int) -> None:  # gradual (cubic) global L1 pruning to DENSITY
            if step > ramp or (step % max(1, ramp // 8) and step != ramp):
                return
            share = 1.0 - (1.0 - min(step, ramp) / ramp) ** 3
            amount = (1.0 - DENSITY) * share
            for m, n in targets:
                if tprune.is_pruned(m):
                    tprune.remove(m, n)
            tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=amount)

    acc, state = _fit(model, loaders, TUNE_EPOCHS, 5e-4, hook)
    if prune:
        import torch.nn.utils.prune as tprune

        for m, n in targets:
            if tprune.is_pruned(m):
                tprune.remove(m, n)
        state = {k.replace("_orig", ""): v for k, v in state.items() if not k.endswith("_mask")}
    model.load_state_dict(state, strict=False)
    model.eval()
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "b.onnx"
        export_onnx_qcdq(model, torch.zeros(1, *shape), export_path=str(path), dynamo=False)
        buf.write(path.read_bytes())
    name = f"Brevitas 4-bit QAT{' + global L1 pruning to 10%' if prune else ''}"
    return [_row(name, acc, buf.getvalue(), "QCDQ ONNX", True, shape)]


def _ort_int8(start: nn.Module, loaders: tuple, shape: tuple, data: Any) -> list:
    from pqcompress.data import make_loader
    from pqcompress.export import export_onnx

    model = copy.deepcopy(start).eval()
    calib = [x for (x, _), _ in zip(make_loader(data.train, 64, shuffle=False), range(8))]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(
            model, Path(tmp) / "q.onnx", input_shape=shape, int8=True, calibration=calib
        )
        blob = Path(path).read_bytes()
    from pqcompress.export import load_onnx

    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(blob)
        f.flush()
        acc = _accuracy(load_onnx(f.name, threads=1), loaders[2])
    return [_row("ONNX Runtime int8 PTQ", acc, blob, "QDQ ONNX", True, shape)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    from pqcompress.models import build_model

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    dense_bytes = 0
    for seed in args.seeds:
        torch.manual_seed(seed)
        data, train, val, test = _loaders(seed)
        loaders = (train, val, test)
        shape = tuple(data.input_shape)
        start = build_model(
            "student_cnn", num_classes=data.num_classes, input_shape=shape, width=1.4
        )
        acc, state = _fit(start, loaders, FLOAT_EPOCHS, 1e-3)
        start.load_state_dict(state)
        buf = io.BytesIO()
        torch.save(start.state_dict(), buf)
        dense_bytes = len(buf.getvalue())
        rows.append(
            {"seed": seed, **_row("float32", acc, buf.getvalue(), "torch.save", False, shape)}
        )
        steps = len(train(0))
        methods: list[tuple[str, Callable[[], list]]] = [
            ("pqcompress", partial(_pqcompress, start, loaders, shape, steps, False)),
            ("pqcompress", partial(_pqcompress, start, loaders, shape, steps, True)),
            ("brevitas", partial(_brevitas, start, loaders, shape, steps, False)),
            ("brevitas", partial(_brevitas, start, loaders, shape, steps, True)),
            ("onnxruntime", partial(_ort_int8, start, loaders, shape, data)),
        ]
        for package, run in methods:
            try:
                __import__(package)
            except ImportError:
                notes.append(f"{package} is not installed: its rows are left out")
                continue
            for r in run():
                rows.append({"seed": seed, **r})
                print(json.dumps(rows[-1], default=str), flush=True)
    report = {"rows": rows, "float32_state_dict_bytes": dense_bytes, "notes": sorted(set(notes))}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    text = _table(report, args.seeds)
    if args.table:
        args.table.write_text(text)
    print(text)
    return 0


def _table(report: dict[str, Any], seeds: list[int]) -> str:
    from pqcompress.cpus import cpu_model

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in report["rows"]:
        groups.setdefault((r["method"], r["artifact"]), []).append(r)
    dense = report["float32_state_dict_bytes"]
    lines = [
        "# pqcompress beside its peers (PneumoniaMNIST, the 4-conv student)",
        "",
        f"Seeds {', '.join(map(str, seeds))}; test accuracy at the best validation epoch "
        f"(mean +- sd); artifact bytes of the last seed; x smaller than torch.save(state_dict) "
        f"of the float32 model ({dense:,} B); ONNX Runtime batch-1 latency, one thread, median "
        f"of 200 ({cpu_model()}).",
        "",
        "| method | artifact | test acc % | bytes | zstd bytes | x smaller (zstd) | ORT ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (method, artifact), rs in groups.items():
        accs = [100 * r["test_acc"] for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        last = rs[-1]
        ms = last.get("ort_ms")
        lines.append(
            f"| {method} | {artifact} | {statistics.mean(accs):.2f} +- {sd:.2f} | "
            f"{last['bytes']:,} | {last['zstd_bytes']:,} | "
            f"{dense / min(last['bytes'], last['zstd_bytes']):.1f}x | "
            f"{'-' if ms is None else f'{ms:.3f}'} |"
        )
    lines += [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
