"""Noise sources (flashgen.noise): the Philox4x32-10 cipher against Random123's known-answer
vectors, the "nv" stream against AUTOMATIC1111's documented output, the "cpu" stream against
torch, and the stream's layout and statistics."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen.noise import SOURCES, NoiseStream, philox4x32, philox_randn

# Random123's kat_vectors for philox4x32_10: (counter, key) -> output words
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]

# AUTOMATIC1111's modules/rng_philox.py: Generator(seed=0).randn((3, 4)), as documented there
# (the values torch.randn((3, 4), device="cuda") gives after manual_seed(0))
A1111_SEED0 = [
    [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
    [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
    [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_known_answers(counter, key, expected):
    c = np.array(counter, dtype=np.uint32).reshape(4, 1)
    k = np.array(key, dtype=np.uint32).reshape(2, 1)
    got = philox4x32(c, k)
    assert [int(w[0]) for w in got] == expected
    assert c[:, 0].tolist() == counter and k[:, 0].tolist() == key  # inputs untouched


def test_nv_stream_matches_automatic1111():
    got = NoiseStream("nv", 0).randn((3, 4))
    assert got.dtype == torch.float32 and got.shape == (3, 4)
    np.testing.assert_allclose(got.numpy(), np.array(A1111_SEED0), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), offset=st.integers(0, 2**40), i=st.integers(0, 63))
def test_nv_element_i_is_philox_of_its_own_counter(seed, offset, i):
    """Element i is Box-Muller of the first two words of Philox([offset, i], seed): the layout
    that makes a tensor's values independent of its shape and of the elements after it."""
    stream = philox_randn(seed, 64, offset)
    c = np.array([offset & 0xFFFFFFFF, offset >> 32, i, 0], dtype=np.uint32).reshape(4, 1)
    k = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32).reshape(2, 1)
    w = philox4x32(c, k)[:, 0].astype(np.float64)
    inv = float(np.float32(2.3283064e-10))
    inv2pi = float(np.float32(2.3283064e-10 * 6.2831855))
    u, v = w[0] * inv + inv / 2, w[1] * inv2pi + inv2pi / 2
    assert stream[i] == np.float32(np.sqrt(-2 * np.log(u)) * np.sin(v))
    assert np.array_equal(philox_randn(seed, i + 1, offset), stream[: i + 1])  # a prefix


def test_nv_draws_continue_the_stream():
    """Each draw takes the next counter offset, as A1111's generator does (img2img draws the
    VAE posterior's sample, then the noise)."""
    s = NoiseStream("nv", 42)
    first, second = s.randn((2, 8)), s.randn((16,))
    assert np.array_equal(first.numpy().ravel(), philox_randn(42, 16, 0))
    assert np.array_equal(second.numpy(), philox_randn(42, 16, 1))
    assert not torch.equal(first.ravel(), second)


def test_nv_uses_both_halves_of_the_seed():
    low = philox_randn(5, 32)
    assert not np.array_equal(low, philox_randn(5 + 2**40, 32))
    assert not np.array_equal(low, philox_randn(6, 32))


def test_nv_stream_is_standard_normal():
    x = philox_randn(123, 200_000).astype(np.float64)
    assert np.isfinite(x).all()
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert abs((x < 0).mean() - 0.5) < 0.005
    assert abs((np.abs(x) < 1.96).mean() - 0.95) < 0.005
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.01  # neighbours uncorrelated


def test_cpu_stream_is_torch_cpu_generator():
    s = NoiseStream("cpu", 9)
    g = torch.Generator("cpu").manual_seed(9)
    for shape in [(1, 16, 8, 8), (3,)]:
        assert torch.equal(s.randn(shape), torch.randn(shape, generator=g))
    assert NoiseStream("cpu", 9).randn((4,), dtype=torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("source", SOURCES)
def test_same_seed_same_noise_other_seed_other_noise(source):
    a = NoiseStream(source, 3).randn((1, 4, 8, 8))
    assert torch.equal(a, NoiseStream(source, 3).randn((1, 4, 8, 8)))
    assert not torch.equal(a, NoiseStream(source, 4).randn((1, 4, 8, 8)))


def test_unknown_source_and_bad_seed_are_refused():
    with pytest.raises(ValueError, match="rng must be one of cpu, nv, got 'gpu'"):
        NoiseStream("gpu", 0)
    with pytest.raises(ValueError, match="seed must be in"):
        philox_randn(-1, 4)
