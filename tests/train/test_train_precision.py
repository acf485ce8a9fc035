"""bf16 autocast on CPU through the run config, and gradient checkpointing on a real (tiny)
diffusers SD3 transformer: same gradients, switch applied only when the run asks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import latest, run_cfg, run_ok
from train_toy_task import ToyConfig, ToyTask
from two_process import DDP, launch_argv

from flashgen import devices
from flashgen.train import TrainContext, run
from flashgen.train.loop import make_accelerator


class _DtypeProbe(ToyTask):
    """Records the dtype the last Linear computes in (prepare() casts model outputs to fp32)."""

    def setup(self, ctx):
        super().setup(ctx)
        ctx.unwrap(self.model)[-1].register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.seen_dtype = output.dtype


def test_bf16_autocast_on_cpu(tmp_path):
    task = _DtypeProbe(ToyConfig())
    result = run(task, run_cfg(tmp_path, max_steps=3, mixed_precision="bf16"))
    assert result.step == 3 and task.seen_dtype == torch.bfloat16
    assert task.ctx.unwrap(task.model)[0].weight.dtype == torch.float32  # master weights stay fp32


@pytest.mark.parametrize(
    ("setting", "cuda", "bf16_fast", "expected"),
    [
        ("auto", False, True, "bf16"),  # a CPU where bf16 is the faster dtype
        ("auto", False, False, "no"),
        ("auto", True, True, "bf16"),
        ("auto", True, False, "no"),  # an old GPU: not fp16 unasked (it needs a scaler)
        ("no", False, True, "no"),  # explicit settings are never second-guessed
        ("bf16", False, False, "bf16"),
        ("fp16", True, True, "fp16"),
    ],
)
def test_auto_precision_follows_the_faster_dtype(monkeypatch, setting, cuda, bf16_fast, expected):
    """Only "auto" asks, and only the device the run uses."""

    def never():
        raise AssertionError("consulted a device the run does not use")

    asked = setting == "auto"
    answer = lambda: bf16_fast
    monkeypatch.setattr(devices, "cpu_fast_bf16", answer if asked and not cuda else never)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", answer if asked and cuda else never)
    assert devices.resolve_mixed_precision(setting, cuda) == expected


def test_auto_on_a_cpu_where_bf16_is_faster_trains_in_bf16(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.CPU_BF16_ENV, "1")
    task = _DtypeProbe(ToyConfig())
    run(task, run_cfg(tmp_path, max_steps=2, mixed_precision="auto"))
    assert task.seen_dtype == torch.bfloat16
    meta = json.loads((latest(tmp_path) / "meta.json").read_text())
    assert meta["run"]["mixed_precision"] == "auto" and meta["run"]["autocast"] == "bf16"


def test_resume_where_auto_resolves_otherwise_names_the_change(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(devices.CPU_BF16_ENV, "0")
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=2, mixed_precision="auto"))
    capsys.readouterr()
    monkeypatch.setenv(devices.CPU_BF16_ENV, "1")
    run(ToyTask(ToyConfig()), run_cfg(tmp_path, max_steps=4, mixed_precision="auto"), resume=True)
    assert 'run.autocast "no" -> "bf16"' in capsys.readouterr().err
    meta = json.loads((latest(tmp_path) / "meta.json").read_text())
    assert meta["changed_on_resume"][0]["changes"] == {"run.autocast": ["no", "bf16"]}


def test_processes_of_one_cpu_launch_take_the_first_ones_precision():
    """Each process measures its own CPU; under load two could disagree. Rank 1 is told bf16 is
    slower, rank 0 that it is faster: both must train in rank 0's precision."""
    proc = run_ok(launch_argv(DDP, str(Path(__file__).parent / "precision_ranks.py")))
    assert sorted(line for line in proc.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0: bf16",
        "rank 1: bf16",
    ]


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16.*needs a CUDA device"):
        make_accelerator(run_cfg("unused", mixed_precision="fp16"))


def _tiny_sd3():
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    return SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        caption_projection_dim=16,
        pooled_projection_dim=8,
        pos_embed_max_size=8,
        qk_norm="rms_norm",
        dual_attention_layers=(0,),
    )


def _grads(model):
    torch.manual_seed(1)
    model.train()
    x, text, pooled = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16), torch.randn(2, 8)
    out = model(
        x,
        encoder_hidden_states=text,
        pooled_projections=pooled,
        timestep=torch.tensor([500.0, 20.0]),
    ).sample
    out.square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_grad_checkpointing_same_gradients_on_sd3_transformer(tmp_path):
    accelerator = make_accelerator(run_cfg(tmp_path))
    plain, ckpt = _tiny_sd3(), _tiny_sd3()
    TrainContext(accelerator, run_cfg(tmp_path)).apply_grad_checkpointing(plain)
    assert not plain.gradient_checkpointing
    TrainContext(accelerator, run_cfg(tmp_path, grad_checkpointing=True)).apply_grad_checkpointing(
        ckpt
    )
    assert ckpt.gradient_checkpointing
    a, b = _grads(plain), _grads(ckpt)
    assert a.keys() == b.keys()
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no gradient checkpointing switch"):
        TrainContext(
            accelerator, run_cfg(tmp_path, grad_checkpointing=True)
        ).apply_grad_checkpointing(torch.nn.Linear(2, 2))
