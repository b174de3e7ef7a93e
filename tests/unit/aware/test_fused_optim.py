"""The fused optimizers (PQSGD, PQAdam, PQAdamW, ``fuse``) match the torch optimizer followed by
Compressor.step()."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pqcompress import CompressionConfig, Compressor
from pqcompress.aware import PQSGD, PQAdam, PQAdamW, fuse
from pqcompress.errors import ConfigError
from pqcompress.ops import decode

from .aware_support import batches as _batches
from .aware_support import fit, net


def batches(n: int = 8):
    return _batches(n)


def run(cfg: CompressionConfig, fused: bool, sgd: dict, data) -> tuple[nn.Module, Compressor]:
    model = net()
    comp = Compressor(model, cfg, fuse_steps=False)  # plain: torch's step, a separate pass
    opt_cls = PQSGD if fused else torch.optim.SGD
    opt = opt_cls(model.parameters(), comp, **sgd) if fused else opt_cls(model.parameters(), **sgd)
    fit(model, opt, comp, data)
    return model, comp


SGD_SETTINGS = [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    {"lr": 0.02, "momentum": 0.8, "dampening": 0.1, "weight_decay": 1e-3},
]


def assert_same_run(
    plain: nn.Module, fused: nn.Module, pc: Compressor, fc: Compressor, skip: tuple[str, ...] = ()
) -> None:
    """Same method: at most last-bit differences (fused multiply-add, vectorised kernels), and
    every fused tensor exactly on its grid."""
    assert fc.steps == pc.steps and fc.applications == pc.applications
    for (name, a), b in zip(plain.named_parameters(), fused.parameters()):
        if name in skip:
            continue
        diff = (a - b).abs()
        close = diff <= 1e-5 * a.abs().clamp_min(1e-3)
        assert float(close.float().mean()) > 0.995, name
    for t in fc.targets:
        res = fc.compressed(t.name)
        assert torch.equal(
            decode(res.codes, res.kind, res.scale, res.threshold, bits=res.bits), t.param.detach()
        )


@pytest.mark.parametrize("sgd", SGD_SETTINGS)
@pytest.mark.parametrize("update", ["latent", "inplace"])
@pytest.mark.parametrize("form", ["exact", "uniform"])
def test_fused_step_matches_sgd_then_compressor(sgd, update, form):
    data = batches()
    cfg = CompressionConfig(alpha=0.5, bits=4, form=form, update=update)
    plain, pc = run(cfg, False, sgd, data)
    fused, fc = run(cfg, True, sgd, data)
    assert fc.steps == len(data)
    assert_same_run(plain, fused, pc, fc)


ADAM_SETTINGS = [
    (torch.optim.Adam, {"lr": 1e-3}),
    (torch.optim.Adam, {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-3}),
    (torch.optim.AdamW, {"lr": 1e-3}),
    (torch.optim.AdamW, {"lr": 2e-3, "weight_decay": 0.05}),
]


@pytest.mark.parametrize(("cls", "kw"), ADAM_SETTINGS)
@pytest.mark.parametrize("update", ["latent", "inplace"])
def test_fused_adam_matches_adam_then_compressor(cls, kw, update):
    data = batches()
    cfg = CompressionConfig(alpha=0.5, bits=4, update=update)
    plain = net()
    pc = Compressor(plain, cfg, fuse_steps=False)
    fit(plain, cls(plain.parameters(), **kw), pc, data)
    fused = net()
    fc = Compressor(fused, cfg)
    opt = fuse(cls(fused.parameters(), **kw), fc)
    assert type(opt) is (PQAdamW if cls is torch.optim.AdamW else PQAdam)
    fit(fused, opt, fc, data)
    assert fc.steps == len(data)
    # the conv bias feeds BatchNorm, so its true gradient is zero: what it gets is rounding
    # noise, which Adam divides by its own size, so a last-bit difference elsewhere moves it
    # by up to lr per step
    assert_same_run(plain, fused, pc, fc, skip=("0.bias",))
    # the state is Adam's, step counts included: it loads into the torch optimizer
    back = cls(fused.parameters(), **kw)
    back.load_state_dict(opt.state_dict())
    assert all(int(s["step"]) == len(data) for s in back.state.values())


def test_fuse_keeps_groups_and_state_and_the_loop_continues_identically():
    """Fusing mid-training (groups with their own lr, momentum state) continues the run as
    the torch optimizer would have."""
    data = batches(6)
    cfg = CompressionConfig(alpha=0.5, bits=8)
    runs = []
    for fused_after in (None, 3):
        model = net()
        comp = Compressor(model, cfg, fuse_steps=False)
        head = list(model[-1].parameters())
        rest = [p for p in model.parameters() if all(p is not h for h in head)]
        opt = torch.optim.SGD(
            [{"params": rest}, {"params": head, "lr": 0.01}], lr=0.05, momentum=0.9
        )
        fit(model, opt, comp, data[:3])
        if fused_after is not None:
            opt = fuse(opt, comp)
            assert isinstance(opt, PQSGD) and opt.param_groups[1]["lr"] == 0.01
        fit(model, opt, comp, data[3:])
        runs.append((model, comp))
    (plain, pc), (fused, fc) = runs
    assert_same_run(plain, fused, pc, fc)


def test_fuse_refuses_what_it_cannot_fuse():
    model = net()
    comp = Compressor(model, CompressionConfig())
    with pytest.raises(ConfigError, match=r"fuse\(\) accepts torch.optim.SGD"):
        fuse(torch.optim.RMSprop(model.parameters()), comp)
    fused = fuse(torch.optim.Adam(model.parameters()), comp)
    assert fuse(fused, comp) is fused
    with pytest.raises(ConfigError, match="another compressor"):
        fuse(fused, Compressor(model, CompressionConfig()))


def test_amsgrad_groups_take_torchs_step():
    data = batches(4)
    cfg = CompressionConfig(alpha=0.5, bits=4)
    out = []
    for fused in (False, True):
        model = net()
        comp = Compressor(model, cfg, fuse_steps=False)
        kw = {"lr": 1e-3, "amsgrad": True}
        opt = (
            PQAdam(model.parameters(), comp, **kw)
            if fused
            else torch.optim.Adam(model.parameters(), **kw)
        )
        fit(model, opt, comp, data)
        out.append(model)
    for a, b in zip(out[0].parameters(), out[1].parameters()):
        assert torch.equal(a, b)


def test_float_targets_and_other_parameters_take_plain_sgd():
    data = batches(4)
    cfg = CompressionConfig(alpha=0.0, bits=32)  # nothing compressed: every target is "none"
    sgd = {"lr": 0.05, "momentum": 0.9}
    plain, _ = run(cfg, False, sgd, data)
    fused, _ = run(cfg, True, sgd, data)
    for a, b in zip(plain.parameters(), fused.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "cfg", [CompressionConfig(schedule="epoch"), CompressionConfig(mask="sticky")]
)
def test_unfusable_compressors_fall_back_to_plain_sgd(cfg):
    data = batches(4)
    sgd = {"lr": 0.05, "momentum": 0.9}
    plain, pc = run(cfg, False, sgd, data)
    fused, fc = run(cfg, True, sgd, data)
    assert not fc.can_fuse()
    for a, b in zip(plain.parameters(), fused.parameters()):
        assert torch.equal(a, b)
    assert fc.applications == pc.applications


def test_state_dict_is_sgds_so_checkpoints_move_between_them():
    data = batches(6)
    cfg = CompressionConfig(alpha=0.5, bits=8)
    sgd = {"lr": 0.05, "momentum": 0.9, "nesterov": True}
    model = net()
    comp = Compressor(model, cfg)
    opt = PQSGD(model.parameters(), comp, **sgd)
    for x, y in data[:3]:
        F.cross_entropy(model(x), y).backward()
        opt.step()
        comp.step()
        opt.zero_grad()
    state = opt.state_dict()
    plain = torch.optim.SGD(model.parameters(), **sgd)
    plain.load_state_dict(state)
    bufs = [plain.state[p]["momentum_buffer"] for p in model.parameters()]
    assert all(b is not None and b.shape == p.shape for b, p in zip(bufs, model.parameters()))


def two_convs() -> nn.Module:
    """A second conv with 8 input channels, whose weight channels_last really reorders."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )


@pytest.mark.parametrize("update", ["latent", "inplace"])
def test_a_channels_last_model_fuses_and_trains_like_a_contiguous_one(update):
    data = batches(6)
    cfg = CompressionConfig(alpha=0.5, bits=4, update=update)
    sgd = {"lr": 0.05, "momentum": 0.9}
    out = []
    for layout in (torch.contiguous_format, torch.channels_last):
        model = two_convs().to(memory_format=layout)
        comp = Compressor(model, cfg, fuse_steps=False)
        assert comp.can_fuse()  # dense, if not contiguous: the kernels walk memory order
        fit(model, fuse(torch.optim.SGD(model.parameters(), **sgd), comp), comp, data)
        out.append((model, comp))
    (plain, pc), (cl, cc) = out
    assert cl[2].weight.is_contiguous(memory_format=torch.channels_last)
    assert not cl[2].weight.is_contiguous()
    assert_same_run(plain, cl, pc, cc)


def test_state_in_another_layout_takes_torchs_step_and_still_compresses():
    """A momentum buffer restored in the contiguous layout beside a channels_last weight cannot
    be paired in memory order: that tensor takes torch's step and the separate pass."""
    data = batches(4)
    cfg = CompressionConfig(alpha=0.5, bits=4)
    runs = []
    for fused in (False, True):
        model = two_convs().to(memory_format=torch.channels_last)
        comp = Compressor(model, cfg, fuse_steps=False)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        w = model[2].weight
        opt.state[w]["momentum_buffer"] = torch.zeros(w.shape)  # contiguous
        if fused:
            opt = fuse(opt, comp)
        fit(model, opt, comp, data)
        runs.append((model, comp))
    (plain, pc), (fused, fc) = runs
    assert_same_run(plain, fused, pc, fc)
    assert fused[2].weight.is_contiguous(memory_format=torch.channels_last)


def on_grid(model: nn.Module, comp: Compressor) -> bool:
    """Whether every compressed tensor holds exactly its latest application's values."""
    for t in comp.fused_targets():
        try:
            res = comp.compressed(t.name)
        except ValueError:  # off the grid: the optimizer moved them since
            return False
        if not torch.equal(
            decode(res.codes, res.kind, res.scale, res.threshold, bits=res.bits), t.param.detach()
        ):
            return False
    return True


@pytest.mark.parametrize(
    "make",
    [
        torch.optim.SGD,
        torch.optim.Adam,
        torch.optim.AdamW,
        partial(torch.optim.AdamW, fused=True),  # transformers' default optimizer
    ],
)
def test_the_users_own_optimizer_is_fused_through_step_hooks(make):
    """The README loop unchanged: after ``opt.step()`` the weights are already compressed
    (the hook ran the fused update), ``comp.step()`` only closes the step, and the run is
    the unfused one but for last bits."""
    data = batches(6)
    cfg = CompressionConfig(alpha=0.5, bits=4)
    kw = {"lr": 0.05, "momentum": 0.9} if make is torch.optim.SGD else {"lr": 1e-3}
    runs = []
    for hooked in (False, True):
        model = net()
        comp = Compressor(model, cfg, fuse_steps=hooked)
        opt = make(model.parameters(), **kw)
        for x, y in data:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if comp.applications:
                assert on_grid(model, comp) is hooked  # compressed inside opt.step()?
            comp.step()
        runs.append((model, comp))
    (plain, pc), (fused, fc) = runs
    assert fc.steps == pc.steps == len(data)
    assert_same_run(plain, fused, pc, fc, skip=("0.bias",))


def _loss_and_grad(model: nn.Module, opt: torch.optim.Optimizer, x, y) -> torch.Tensor:
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss


def test_hooks_leave_alone_what_they_cannot_fuse_whole():
    """An optimizer holding only some compressed tensors (a second one owns the rest), a step
    with a closure, an optimizer without a fused kernel: torch's step, then the pass."""
    data = batches(3)
    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    head = list(model[-1].parameters())
    rest = [p for p in model.parameters() if all(p is not h for h in head)]
    first, second = torch.optim.SGD(rest, lr=0.05), torch.optim.Adam(head, lr=1e-3)
    rms = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    for x, y in data:
        for opt in ((first, second), (rms,)):
            for o in opt:
                o.zero_grad()
            F.cross_entropy(model(x), y).backward()
            for o in opt:
                o.step()
            assert not comp._fused_step  # nothing was fused: comp.step() compresses
            comp.step()
        closure_opt = torch.optim.SGD(model.parameters(), lr=0.05)
        closure_opt.step(partial(_loss_and_grad, model, closure_opt, x, y))
        assert not comp._fused_step
        comp.step()
    assert comp.steps == 3 * len(data)
    # a wrapper passing closure=None explicitly (accelerate's optimizer does) is still fused
    whole = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data[0]
    whole.zero_grad()
    F.cross_entropy(model(x), y).backward()
    whole.step(None)
    assert comp._fused_step
    comp.step()


def test_hooks_go_with_the_compressor():
    import gc

    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    assert comp.fuses_steps
    del comp
    gc.collect()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    before = model[0].weight.detach().clone()
    opt.step()  # no compressor left: a plain step, no error
    assert not torch.equal(before, model[0].weight)
    assert not Compressor(model, CompressionConfig(schedule="epoch")).fuses_steps
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    comp.unhook()
    assert not comp.fuses_steps
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert not comp._fused_step  # unhooked: the step was torch's alone


def test_a_pickled_or_copied_compressor_brings_its_own_hooks():
    import copy
    import pickle

    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    twin = copy.deepcopy(comp)
    back = pickle.loads(pickle.dumps(comp))
    assert twin.fuses_steps and back.fuses_steps
    comp.unhook()  # the original's hooks only
    assert twin.fuses_steps
    opt = torch.optim.SGD(twin.model.parameters(), lr=0.05)
    x, y = batches(1)[0]
    F.cross_entropy(twin.model(x), y).backward()
    opt.step()
    assert twin._fused_step  # the copy's own hooks fused its model's step
    assert not Compressor(model, CompressionConfig(), fuse_steps=False).fuses_steps


def test_of_two_compressors_of_one_model_the_newest_fuses():
    """An older compressor left alive (an earlier notebook cell) does not compress the model
    a second time at every step: only the newest one's hooks act."""
    model = net()
    old = Compressor(model, CompressionConfig(alpha=0.5, bits=8))
    new = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert new._fused_step and new.steps == 1
    assert not old._fused_step and old.steps == 0
    assert on_grid(model, new)


def test_a_step_that_raises_leaves_every_gradient_in_place():
    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    head = list(model[-1].parameters())
    rest = [p for p in model.parameters() if all(p is not h for h in head)]
    opt = torch.optim.SGD([{"params": rest}, {"params": head, "lr": "bad"}], lr=0.05)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    with pytest.raises((TypeError, ValueError)):
        opt.step()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert comp.steps == 0
