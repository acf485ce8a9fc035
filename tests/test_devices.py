"""The CPU's default dtype is the faster one there (flashgen.devices): bf16 with AMX, fp32
without AVX512-BF16, measured in between; FLASHGEN_CPU_BF16 overriding the detection, an
explicit dtype always winning."""

import math

import numpy as np
import pytest
import torch

import flashgen
from flashgen import GenerationRequest, devices
from flashgen.errors import UsageError
from flashgen.models.tiny import build_tiny_sd35
from flashgen.profiles import get_profile

CPU = torch.device("cpu")


def _no_probe():
    raise AssertionError("the bf16 probe ran where the flags or the override decide")


@pytest.mark.parametrize(
    "env, amx, avx512_bf16, speedup, fast",
    [
        ("1", False, False, None, True),
        ("on", False, False, None, True),
        ("0", True, True, None, False),
        ("off", True, True, None, False),
        ("", True, False, None, True),  # AMX: bf16 without measuring
        ("auto", False, False, None, False),  # no bf16 dot products: emulated, fp32
        ("", False, False, None, False),
        ("", False, True, 2.1, True),  # AVX512-BF16 measured faster (this repo's AMD EPYC)
        ("", False, True, 0.5, False),  # ... measured slower (the Xeon VM of sessions 1-8)
        ("", False, True, 1.1, False),  # ... not clearly faster
    ],
)
def test_fast_bf16_follows_the_override_then_the_flags_then_the_probe(
    monkeypatch, env, amx, avx512_bf16, speedup, fast
):
    monkeypatch.setenv(devices.CPU_BF16_ENV, env)
    monkeypatch.setattr(devices, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(devices, "cpu_has_avx512_bf16", lambda: avx512_bf16)
    probe = _no_probe if speedup is None else (lambda: speedup)
    monkeypatch.setattr(devices, "cpu_bf16_matmul_speedup", probe)
    assert devices.cpu_fast_bf16() is fast
    assert devices.resolve_dtype(None, CPU) == (torch.bfloat16 if fast else torch.float32)
    assert devices.resolve_dtype("auto", CPU) == (torch.bfloat16 if fast else torch.float32)
    # an explicit choice is never overridden
    assert devices.resolve_dtype("fp32", CPU) == torch.float32
    assert devices.resolve_dtype("bf16", CPU) == torch.bfloat16


def test_bf16_probe_measures_once_per_process():
    devices.cpu_bf16_matmul_speedup.cache_clear()
    first = devices.cpu_bf16_matmul_speedup()
    assert math.isfinite(first) and first > 0
    assert devices.cpu_bf16_matmul_speedup() == first  # cached: the dtype cannot flip mid-run
    assert devices.cpu_bf16_matmul_speedup.cache_info().hits >= 1


def test_a_bad_override_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(devices.CPU_BF16_ENV, "maybe")
    with pytest.raises(UsageError, match="FLASHGEN_CPU_BF16"):
        devices.resolve_dtype(None, CPU)


def test_cpu_flag_queries_answer_a_bool(monkeypatch):
    assert isinstance(devices.cpu_has_amx(), bool)
    assert isinstance(devices.cpu_has_avx512_bf16(), bool)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert devices.cpu_has_amx() is False  # a torch without the query: fp32, as before
    assert devices.cpu_has_avx512_bf16() is False


def test_desktop_profile_computes_natively_in_bf16():
    """bf16-weight (bf16 storage, fp32 compute) is what the desktop profile means on a CPU whose
    compute dtype is fp32; at bf16 compute the weights are bf16 anyway and run natively."""
    fp32 = get_profile("desktop", CPU, torch.float32)
    assert (fp32.transformer, fp32.clip) == ("bf16-weight", "bf16-weight")
    assert get_profile("desktop", CPU).transformer == "bf16-weight"
    bf16 = get_profile("desktop", CPU, torch.bfloat16)
    assert (bf16.transformer, bf16.clip, bf16.t5) == (None, None, "int8-group")
    assert get_profile("laptop", CPU, torch.bfloat16).transformer == "int8-dynamic"


def test_auto_dtype_load_on_a_fast_bf16_cpu(monkeypatch, tmp_path):
    """With fast bf16 a default load computes in bf16 (and says so in its settings); the image
    stays close to the fp32 one, and --dtype fp32 still gives fp32."""
    torch.set_num_threads(2)
    folder = build_tiny_sd35(tmp_path / "m", with_t5=False, seed=3)
    request = GenerationRequest("a red circle", steps=2, seed=0)
    monkeypatch.setenv(devices.CPU_BF16_ENV, "1")
    pipe = flashgen.load(str(folder))
    assert pipe.dtype == torch.bfloat16 and pipe.transformer.dtype == torch.bfloat16
    res = pipe.generate(request)
    assert res.settings.dtype == "bf16"
    ref = flashgen.load(str(folder), dtype="fp32").generate(request)
    assert ref.settings.dtype == "fp32"
    other = flashgen.load(str(folder), dtype="fp32").generate(
        GenerationRequest("a green triangle", steps=2, seed=0)
    )
    a, b, c = (np.asarray(r.images[0], dtype=np.float32) / 255 for r in (res, ref, other))
    # measured: bf16 vs fp32 ~0.005 mean; another prompt moves the tiny model's pixels ~0.038
    tol = 0.015
    assert np.abs(a - b).mean() < tol
    assert np.abs(c - b).mean() > tol
    desktop = flashgen.load(str(folder), profile="desktop")
    assert desktop.transformer.dtype == torch.bfloat16
    assert not any("QuantLinear" in type(m).__name__ for m in desktop.transformer.modules())
