import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen.quant import packing


@settings(max_examples=40, deadline=None)
@given(
    bits=st.sampled_from([4, 6, 8]),
    rows=st.integers(1, 5),
    words=st.integers(1, 9),
    seed=st.integers(0, 2**31),
)
def test_pack_unpack_round_trip(bits, rows, words, seed):
    n = words * packing.PACK_UNIT[bits]
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (rows, n), generator=g, dtype=torch.int32).to(torch.uint8)
    packed = packing.pack(codes, bits)
    assert packed.shape == (rows, n * bits // 8)
    assert torch.equal(packing.unpack(packed, bits), codes)


def test_packed_bytes_are_the_documented_layout():
    codes = torch.tensor([[1, 2, 3, 4]], dtype=torch.uint8)
    assert packing.pack(codes, 4).tolist() == [[0x21, 0x43]]  # low nibble first
    word = 1 | 2 << 6 | 3 << 12 | 4 << 18
    assert packing.pack(codes, 6).tolist() == [[word & 0xFF, word >> 8 & 0xFF, word >> 16]]


def test_bad_lengths_are_refused():
    with pytest.raises(ValueError, match="multiple of 4"):
        packing.pack(torch.zeros(1, 6, dtype=torch.uint8), 6)
