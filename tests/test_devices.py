"""The CPU's default dtype follows its matrix units (flashgen.devices): bf16 with AMX, fp32
elsewhere, FLASHGEN_CPU_BF16 overriding the detection, an explicit dtype always winning."""

import numpy as np
import pytest
import torch

import flashgen
from flashgen import GenerationRequest, devices
from flashgen.errors import UsageError
from flashgen.models.tiny import build_tiny_sd35
from flashgen.profiles import get_profile

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "env, amx, fast",
    [
        ("1", False, True),
        ("on", False, True),
        ("0", True, False),
        ("off", True, False),
        ("", True, True),
        ("auto", False, False),
        ("", False, False),
    ],
)
def test_fast_bf16_follows_the_override_then_amx(monkeypatch, env, amx, fast):
    monkeypatch.setenv(devices.CPU_BF16_ENV, env)
    monkeypatch.setattr(devices, "cpu_has_amx", lambda: amx)
    assert devices.cpu_fast_bf16() is fast
    assert devices.resolve_dtype(None, CPU) == (torch.bfloat16 if fast else torch.float32)
    assert devices.resolve_dtype("auto", CPU) == (torch.bfloat16 if fast else torch.float32)
    # an explicit choice is never overridden
    assert devices.resolve_dtype("fp32", CPU) == torch.float32
    assert devices.resolve_dtype("bf16", CPU) == torch.bfloat16


def test_a_bad_override_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(devices.CPU_BF16_ENV, "maybe")
    with pytest.raises(UsageError, match="FLASHGEN_CPU_BF16"):
        devices.resolve_dtype(None, CPU)


def test_amx_probe_answers_a_bool(monkeypatch):
    assert isinstance(devices.cpu_has_amx(), bool)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert devices.cpu_has_amx() is False  # a torch without the query: fp32, as before


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
