"""A model wrapped for training (DDP on 2 gloo processes, DataParallel, torch.compile): the
compressor records the plain model's names and the files it saves load into the bare model."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import pqcompress as pqc
from pqcompress.unwrap import unwrap


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


NAMES = ["0.weight", "3.weight"]


def test_unwrap_finds_the_plain_model_in_every_wrapper():
    model = small_model()
    assert unwrap(model) is model
    assert unwrap(nn.DataParallel(model)) is model
    assert unwrap(torch.compile(model)) is model
    assert unwrap(torch.compile(nn.DataParallel(model))) is model


@pytest.mark.parametrize("wrap", ["dataparallel", "compile"])
def test_a_wrapped_model_compresses_and_saves_under_plain_names(tmp_path, wrap):
    model = small_model()
    wrapped = nn.DataParallel(model) if wrap == "dataparallel" else torch.compile(model)
    comp = pqc.Compressor(wrapped, pqc.CompressionConfig(bits=4))
    assert [t.name for t in comp.targets] == NAMES
    comp.apply()
    pqc.save(wrapped, tmp_path / "w.pqz", compressor=comp)
    bare = pqc.load_into(small_model(seed=1), tmp_path / "w.pqz")
    for name, value in model.state_dict().items():
        assert torch.equal(bare.state_dict()[name], value), name


@pytest.mark.requires("onnx", "onnxruntime")
def test_a_compiled_model_exports_to_onnx(tmp_path):
    from pqcompress.export import export_onnx, load_onnx

    model = small_model().eval()
    path = export_onnx(torch.compile(model), tmp_path / "m.onnx", input_shape=(1, 8, 8))
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(load_onnx(path)(x), model(x), atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_rank(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.set_num_threads(1)
        ddp = nn.parallel.DistributedDataParallel(small_model())
        comp = pqc.Compressor(ddp, pqc.CompressionConfig(bits=4, rounding="stochastic"))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(rank)
        for _ in range(4):
            x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
            loss = nn.functional.cross_entropy(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            comp.step()
        state = ddp.module.state_dict()
        digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state)))
        Path(out, f"rank{rank}.sha").write_text(digest.hexdigest())
        Path(out, f"rank{rank}.names").write_text("\n".join(t.name for t in comp.targets))
        if rank == 0:
            pqc.save(ddp, Path(out, "ddp.pqz"), compressor=comp)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_on_two_gloo_processes_saves_a_file_the_bare_model_loads(tmp_path):
    mp.spawn(_ddp_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank0.sha").read_text() == (tmp_path / "rank1.sha").read_text()
    assert (tmp_path / "rank0.names").read_text().split() == NAMES  # no "module." prefix
    bare = pqc.load_into(small_model(seed=1), tmp_path / "ddp.pqz")
    assert [n for n in bare.state_dict()] == list(small_model().state_dict())
