"""Bit packing: exact inverse, documented bit order, every width 1..32."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqcompress.codec.bitpack import pack, packed_size, unpack


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 32), n=st.integers(0, 100), seed=st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(width: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, 1 << width, n, dtype=np.uint64)
    data = pack(symbols, width)
    assert len(data) == packed_size(n, width)
    assert np.array_equal(unpack(data, n, width).astype(np.uint64), symbols)


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 7, 9, 12, 17])
def test_bit_order_is_lsb_first(width: int) -> None:
    symbols = np.arange(37, dtype=np.uint64) % (1 << width)
    bits = ((symbols[:, None] >> np.arange(width, dtype=np.uint64)) & 1).astype(np.uint8)
    reference = np.packbits(bits.reshape(-1), bitorder="little").tobytes()
    assert pack(symbols, width) == reference


def test_unpack_refuses_wrong_length() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        unpack(b"\x00\x00", 3, 7)
