"""The Lightning callback: P->Q after every optimizer step, its state in Lightning's
checkpoints (resume), a .pqz at the end that the plain model loads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pqcompress as pqc


def _plain() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))


def _module():
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = _plain()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Module()


def _loader():
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    )
    return torch.utils.data.DataLoader(data, batch_size=16)


def _trainer(tmp_path, callback, epochs, **kw):
    import lightning.pytorch as pl

    return pl.Trainer(
        max_epochs=epochs, callbacks=[callback], accelerator="cpu", logger=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, **kw,
    )  # fmt: skip


@pytest.mark.requires("lightning")
def test_pq_after_every_step_and_a_pqz_the_plain_model_loads(tmp_path):
    from pqcompress.integrations.lightning import PQCallback

    callback = PQCallback(pqc.CompressionConfig(bits=4), attr="model", save_path=tmp_path / "m.pqz")
    module = _module()
    _trainer(tmp_path, callback, epochs=2).fit(module, _loader())
    comp = callback.compressor
    assert comp is not None and comp.steps == 8 and comp.epochs == 2  # 4 batches x 2 epochs
    assert [t.name for t in comp.targets] == ["0.weight", "2.weight"]  # the plain names
    for t in comp.targets:
        assert torch.unique(t.param.data).numel() <= 2**4 + 1
    plain = pqc.load_into(_plain(), tmp_path / "m.pqz")
    for name, value in module.model.state_dict().items():
        assert torch.equal(plain.state_dict()[name], value), name


@pytest.mark.requires("lightning")
def test_the_compressor_state_resumes_from_a_lightning_checkpoint(tmp_path):
    from pqcompress.integrations.lightning import PQCallback

    first = PQCallback(pqc.CompressionConfig(bits=4), attr="model")
    _trainer(tmp_path, first, epochs=1).fit(_module(), _loader())
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    second = PQCallback(pqc.CompressionConfig(bits=4), attr="model")
    _trainer(tmp_path, second, epochs=2).fit(_module(), _loader(), ckpt_path=ckpt)
    assert second.compressor is not None
    assert second.compressor.steps == 8 and second.compressor.epochs == 2  # 4 + 4, resumed
