"""The fused update kernels (``sgd_compress_``, ``adam_compress_``) against the torch update
followed by ``compress_``, element by element, in place and latent."""

from __future__ import annotations

import pytest
import torch

from pqcompress.ops import NonFiniteError
from pqcompress.ops.fused import (
    AdamTerms,
    PQSpec,
    SGDTerms,
    adam_compress_,
    compress_,
    sgd_compress_,
)


def tensors(n: int = 50_000, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "p": torch.randn(n, generator=g) * 0.05,
        "r": torch.randn(n, generator=g) * 0.002,
        "grad": torch.randn(n, generator=g) * 0.01,
        "buf": torch.randn(n, generator=g) * 0.01,
    }


@pytest.mark.parametrize("latent", [False, True])
@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_sgd_is_the_update_then_compress_bit_for_bit(latent, nesterov):
    """SGD's float32 update written out (what the kernel computes), then ``compress_``: the
    kernel that never stores the updated weights in ``p`` (latent: it adds them to the
    residual at once) gives the same bits."""
    t = tensors()
    terms = SGDTerms(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=nesterov)
    spec = PQSpec("exact", 0.5, 4)
    p, r, buf = t["p"].clone(), t["r"].clone() if latent else None, t["buf"].clone()
    fused = sgd_compress_(p, r, t["grad"], buf, False, terms, spec)

    ref_p, ref_buf = t["p"].clone(), t["buf"].clone()
    lr, mom, wd = (torch.tensor(v, dtype=torch.float32) for v in (0.05, 0.9, 5e-4))
    d = t["grad"] + wd * ref_p
    ref_buf = mom * ref_buf + d
    step = d + mom * ref_buf if nesterov else ref_buf
    ref_p = ref_p - lr * step
    ref_r = t["r"].clone() if latent else None
    ref = compress_(ref_p, ref_r, spec, backend="numba")

    assert (fused.threshold, fused.scale) == (ref.threshold, ref.scale)
    assert torch.equal(p, ref_p) and torch.equal(buf, ref_buf)
    if latent:
        assert torch.equal(r, ref_r)


@pytest.mark.parametrize("latent", [False, True])
@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_matches_torch_adam_then_compress(latent, decoupled):
    """Three steps of torch's Adam/AdamW on the compressed weights, each followed by
    ``compress_`` (the unfused path), against the fused kernel: the same moments and float
    weights to float32 rounding, the same compressed values but for a rare last-bit flip."""
    t = tensors(seed=1)
    kw = {"lr": 1e-3, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.01}
    spec = PQSpec("uniform", 0.5, 8)
    ref = torch.nn.Parameter(t["p"].clone())
    ref_r = t["r"].clone() if latent else None
    opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)([ref], **kw)
    p, r = t["p"].clone(), t["r"].clone() if latent else None
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for step in (1, 2, 3):
        grad = t["grad"] * step
        ref.grad = grad.clone()
        opt.step()
        compress_(ref.data, ref_r, spec, backend="numba")
        adam_compress_(
            p, r, grad, m, v, AdamTerms(1e-3, step, 0.9, 0.99, 1e-8, 0.01, decoupled), spec
        )
        state = opt.state[ref]
        assert torch.allclose(m, state["exp_avg"], rtol=1e-5, atol=1e-10)
        assert torch.allclose(v, state["exp_avg_sq"], rtol=1e-5, atol=1e-14)
        same = p == ref.data
        assert float(same.float().mean()) > 0.995
        if latent:
            assert torch.allclose(p + r, ref.data + ref_r, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("latent", [False, True])
def test_a_diverged_fused_update_leaves_the_updated_weights_in_p(latent):
    t = tensors(1000)
    grad = t["grad"].clone()
    grad[7] = float("inf")
    p, r, buf = t["p"].clone(), t["r"].clone() if latent else None, t["buf"].clone()
    with pytest.raises(NonFiniteError):
        sgd_compress_(
            p, r, grad, buf, False, SGDTerms(lr=0.1, momentum=0.9), PQSpec("exact", 0.5, 4)
        )
    updated = t["p"] - torch.tensor(0.1) * (torch.tensor(0.9) * t["buf"] + grad)
    if latent:
        updated = updated + t["r"]
        assert torch.equal(r, torch.zeros_like(r))
    assert torch.equal(p.isinf(), updated.isinf())
    assert torch.equal(p[~p.isinf()], updated[~updated.isinf()])


def test_memory_flat_takes_any_dense_layout_and_refuses_gaps():
    from pqcompress.ops.fused import memory_flat, numba_eligible

    x = torch.randn(4, 3, 5, 5)
    cl = x.contiguous(memory_format=torch.channels_last)
    flat = memory_flat(cl)
    assert flat is not None and flat.data_ptr() == cl.data_ptr()
    assert torch.equal(flat, x.permute(0, 2, 3, 1).reshape(-1))  # memory order: N, H, W, C
    t = torch.randn(6, 7).t()
    assert torch.equal(memory_flat(t), t.t().reshape(-1))
    assert memory_flat(torch.randn(8, 8)[:, ::2]) is None  # gaps: not one block
    assert numba_eligible(cl, torch.zeros_like(cl))  # zeros_like keeps the layout
    assert not numba_eligible(cl, torch.zeros_like(cl, memory_format=torch.contiguous_format))
    assert not numba_eligible(torch.randn(8, 8)[:, ::2])


@pytest.mark.parametrize("latent", [False, True])
def test_a_channels_last_tensor_compresses_like_its_contiguous_copy(latent):
    """Element by element the same values: only the order of the statistics' sums differs,
    which may move the threshold in its last bit (checked: it does not here)."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(16, 8, 3, 3, generator=g) * 0.05
    r = torch.randn(w.shape, generator=g) * 0.002 if latent else None
    spec = PQSpec("exact", 0.5, 4)
    a, ra = w.clone(), None if r is None else r.clone()
    b = w.contiguous(memory_format=torch.channels_last)
    rb = None if r is None else r.contiguous(memory_format=torch.channels_last)
    applied_a = compress_(a, ra, spec)
    applied_b = compress_(b, rb, spec)
    assert not b.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last)
    assert abs(applied_a.threshold - applied_b.threshold) <= 1e-7 * applied_a.threshold
    assert float((a == b).float().mean()) > 0.999
    if latent:
        assert torch.allclose(a + ra, b + rb)
