"""Invariants of the P->Q operators (property tests) and the reference/kernel agreement."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pqcompress.ops import (
    PQSpec,
    codes_from_values,
    compress_,
    decode,
    level_count_bound,
    max_level,
    pq_compress,
    prune_by_std,
    quantize_codes,
    std_threshold,
)

FORMS = ["exact", "literal", "uniform"]
DETERMINISTIC = ["floor", "ceil", "trunc", "nearest"]
ROUNDINGS = [*DETERMINISTIC, "stochastic"]


@st.composite
def tensors(draw, min_size=1, max_size=600):
    n = draw(st.integers(min_size, max_size))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-4, 0.05, 1.0, 300.0]))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * scale
    if draw(st.booleans()):  # heavy tails / repeated values / exact zeros
        x[:: max(1, n // 7)] = 0.0
        x[1 :: max(1, n // 5)] *= 20
    return x


@settings(max_examples=150, deadline=None)
@given(
    x=tensors(),
    alpha=st.sampled_from([0.0, 0.125, 0.5, 1.25, 3.0]),
    bits=st.integers(2, 16),
    form=st.sampled_from(FORMS),
    rounding=st.sampled_from(ROUNDINGS),
)
def test_pq_invariants(x, alpha, bits, form, rounding):
    r = pq_compress(
        x, alpha, bits, form=form, rounding=rounding, generator=torch.Generator().manual_seed(1)
    )
    beta = std_threshold(x, alpha)
    # every element with |w| < beta is exactly zero afterwards
    assert torch.all(r.values[x.abs() < beta] == 0)
    assert r.threshold == beta
    # codes times parameters reproduce the stored floats exactly
    assert torch.equal(r.decode(), r.values)
    assert torch.equal(decode(r.codes, r.kind, r.scale, r.threshold, bits=bits), r.values)
    # level counts
    distinct = torch.unique(r.values)
    bound = level_count_bound(form, bits)
    if bound is not None:
        assert distinct.numel() <= bound
        nonzero_levels = int((distinct != 0).sum())
        assert nonzero_levels <= (2**bits if form == "exact" else 2**bits - 2)
    if form in ("exact", "uniform"):
        top = max_level(bits) + (1 if form == "exact" else 0)
        assert int(r.codes.abs().max()) <= top
    # no negative zeros are produced (bit-stable files)
    assert not torch.any(torch.signbit(r.values) & (r.values == 0))
    # codes are recoverable from the values alone
    assert torch.equal(
        decode(
            codes_from_values(r.values, r.kind, bits, r.scale, r.threshold),
            r.kind,
            r.scale,
            r.threshold,
            bits=bits,
        ),
        r.values,
    )


@settings(max_examples=60, deadline=None)
@given(x=tensors(), form=st.sampled_from(FORMS), rounding=st.sampled_from(ROUNDINGS))
def test_alpha0_bits32_is_identity(x, form, rounding):
    x = x.clone()
    x[0] = -0.0
    r = pq_compress(x, 0.0, 32, form=form, rounding=rounding)
    assert r.kind == "none"
    assert torch.equal(r.values, x) and torch.equal(torch.signbit(r.values), torch.signbit(x))
    p = x.clone()
    c = x.clone()
    compress_(p, None, PQSpec("prune", 0.0, 32))  # prune at beta = 0 keeps every bit
    assert torch.equal(torch.signbit(p), torch.signbit(c)) and torch.equal(p, c)


def test_exact_form_is_b_bit_exact_dead_zone():
    x = torch.linspace(-1, 1, 2001)
    r = pq_compress(x, 0.5, 3, form="exact")
    nz = r.values[r.values != 0]
    beta, q = r.threshold, r.scale
    assert nz.abs().min() >= beta  # dead zone: smallest magnitude is beta
    assert torch.unique(nz).numel() == 2**3  # 1 sign bit + 2 magnitude bits per nonzero
    m = (nz.abs() - beta) / q
    assert torch.allclose(m, m.round(), atol=1e-4)
    assert int(r.codes.abs().max()) == 4


def test_literal_form_exceeds_b_bits_as_the_spec_warns():
    x = torch.linspace(-1, 1, 2001)
    r = pq_compress(x, 1.0, 4, form="literal", rounding="floor")
    assert int(r.codes.abs().max()) > max_level(4)


def test_uniform_grid_contains_zero_and_matches_plain_quantization_of_survivors():
    torch.manual_seed(0)
    x = torch.randn(5000)
    r = pq_compress(x, 0.5, 8, form="uniform")
    q = float(x.abs().max()) / 127
    assert r.scale == pytest.approx(q, rel=1e-6)
    assert int(r.codes.abs().max()) <= 127


@pytest.mark.parametrize(
    "rounding,value,expected",
    [
        ("floor", -1.2, -2),
        ("floor", 1.7, 1),
        ("ceil", -1.7, -1),
        ("ceil", 1.2, 2),
        ("trunc", -1.7, -1),
        ("trunc", 1.7, 1),
        ("nearest", -1.5, -2),
        ("nearest", 1.4, 1),
    ],
)
def test_rounding_semantics(rounding, value, expected):
    # scale 1 (max 127 at 8 bits) makes the code the rounded value itself
    x = torch.tensor([value, 127.0])
    codes, scale = quantize_codes(x, 8, rounding)
    assert scale == 1.0
    assert int(codes[0]) == expected


def test_stochastic_rounding_is_unbiased():
    x = torch.full((200_000,), 0.3)
    x[0] = 127.0
    codes, _ = quantize_codes(x, 8, "stochastic", generator=torch.Generator().manual_seed(0))
    assert float(codes[1:].float().mean()) == pytest.approx(0.3, abs=0.01)


def test_prune_by_std_uses_population_std():
    x = torch.tensor([1.0, -1.0, 3.0, -3.0])
    pruned, beta = prune_by_std(x, 0.5)
    assert beta == pytest.approx(0.5 * float(np.std(x.numpy())))
    assert torch.equal(pruned, torch.tensor([0.0, 0.0, 3.0, -3.0]))


@pytest.mark.parametrize("kind", ["exact", "literal", "uniform", "quantize", "prune"])
@pytest.mark.parametrize("rounding", DETERMINISTIC)
@pytest.mark.parametrize("latent", [False, True])
def test_numba_kernel_matches_torch_reference_bit_for_bit(kind, rounding, latent):
    # a seed that is the same in every process (hash() of strings is salted per process)
    seed = zlib.crc32(f"{kind}/{rounding}/{latent}".encode())
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(40_000, generator=g) * 0.05
    w[::97] = 0.0
    for bits in [32] if kind == "prune" else [2, 4, 8, 16]:
        spec = PQSpec(kind, 0.5, bits, rounding)
        res = torch.randn(w.shape, generator=g) * 0.01 if latent else None
        p1, r1 = w.clone(), None if res is None else res.clone()
        p2, r2 = w.clone(), None if res is None else res.clone()
        a1 = compress_(p1, r1, spec, backend="numba")
        a2 = compress_(p2, r2, spec, backend="torch")
        assert (a1.threshold, a1.scale) == (a2.threshold, a2.scale)
        assert torch.equal(p1, p2)
        if latent:
            assert torch.equal(r1, r2)
            assert torch.allclose(p1 + r1, w + res, atol=1e-6)  # float weights are kept


def test_kernel_statistics_do_not_depend_on_thread_count():
    import numba

    from pqcompress.ops import kernels

    x = (np.random.default_rng(0).standard_normal(300_000) * 0.1).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = kernels.tensor_stats(x)
        numba.set_num_threads(before)
        many = kernels.tensor_stats(x)
    finally:
        numba.set_num_threads(before)
    assert one == many
    assert one[0] == pytest.approx(float(np.std(x.astype(np.float64))), rel=1e-9)


@pytest.mark.parametrize("spot", [0, 17_000, 299_999])  # first chunk, a middle one, the tail
def test_kernel_max_abs_is_exact_and_flags_nan_and_inf(spot):
    """max |x| is taken on bit patterns (integer max): exact for either sign, and a NaN or an
    inf anywhere leaves the statistics non-finite."""
    from pqcompress.ops import kernels

    x = (np.random.default_rng(1).standard_normal(300_000) * 0.1).astype(np.float32)
    x[spot] = -7.25
    x[spot - 1 if spot else 1] = -0.0
    _, maxabs, finite = kernels.tensor_stats(x)
    assert finite and maxabs == np.float32(7.25) == np.abs(x).max()
    for bad in (np.nan, -np.inf, np.inf):
        y = x.copy()
        y[spot] = bad
        assert not kernels.tensor_stats(y)[2]


def test_stochastic_kernel_is_reproducible_and_unbiased():
    w = torch.full((100_000,), 0.3)
    w[0] = 127.0
    spec = PQSpec("quantize", 0.0, 8, "stochastic")
    a, b, c = w.clone(), w.clone(), w.clone()
    compress_(a, None, spec, seed=5, backend="numba")
    compress_(b, None, spec, seed=5, backend="numba")
    compress_(c, None, spec, seed=6, backend="numba")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a[1:].mean()) == pytest.approx(0.3, abs=0.01)


def test_non_finite_weights_are_refused_and_left_untouched():
    from pqcompress.ops import NonFiniteError

    for backend in ("numba", "torch"):
        w = torch.randn(1000)
        w[3] = float("nan")
        before = w.clone()
        with pytest.raises(NonFiniteError):
            compress_(w, None, PQSpec("exact", 0.5, 4), backend=backend)
        assert torch.equal(w.isnan(), before.isnan()) and torch.equal(
            w[~w.isnan()], before[~before.isnan()]
        )


def test_degenerate_tensors():
    for x in (torch.zeros(10), torch.full((10,), 0.25), torch.tensor([2.0])):
        for form in FORMS:
            r = pq_compress(x, 0.5, 4, form=form)
            assert torch.equal(r.decode(), r.values)
            p = x.clone()
            compress_(p, None, PQSpec(form, 0.5, 4), backend="numba")
            assert torch.equal(p, r.values)


@pytest.mark.parametrize(
    ("form", "mode", "alpha"),
    [
        ("exact", "pq", 0.0),
        ("uniform", "pq", 0.5),
        ("exact", "quantize", 0.0),
        ("exact", "pq", 0.8),
    ],
)
def test_grid_collapse_names_exactly_the_2_bit_grids_that_zero_a_bell_shaped_layer(
    form, mode, alpha
):
    """The predicate agrees with what the operator does to a Gaussian layer at 2 bits: the grids
    it names zero nearly all weights; the ternary exact form at alpha 0.8 keeps the layer."""
    from pqcompress.ops.pq import grid_collapse, resolve_kind

    w = torch.randn(64, 64, 3, 3, generator=torch.Generator().manual_seed(0))
    out = pq_compress(w, alpha, 2, form=form, mode=mode).values
    zeros = float((out == 0).float().mean())
    cosine = float((w * out).sum() / (w.norm() * out.norm()))
    reason = grid_collapse(resolve_kind(mode, form, alpha, 2), 2, alpha)
    if reason is not None:
        assert zeros > 0.95 and "alpha > 0" in reason
    else:
        assert zeros < 0.7 and cosine > 0.8
    assert grid_collapse(resolve_kind(mode, form, alpha, 3), 3, alpha) is None
