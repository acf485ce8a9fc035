"""`flashgen train tiny-vae`: batches, learning, exact resume, and an export that loads as a
pipeline's decoder."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

import flashgen
from flashgen.miniature.data import render_set
from flashgen.miniature.tiny_vae_task import TinyVaeTask, TinyVaeTaskConfig
from flashgen.train import TrainRunConfig, run

CFG = TinyVaeTaskConfig(channels=8, batch_size=8, report_prompts=6, lr=3e-3, warmup_steps=1)


def _run(out, steps, *, resume=False, data=None, task_cfg=CFG):
    cfg = TrainRunConfig(
        max_steps=steps,
        out_dir=str(out),
        device="cpu",
        mixed_precision="no",
        log_every=1,
        ckpt_every=2,
        seed=0,
    )
    task = TinyVaeTask(task_cfg, data)
    return task, run(task, cfg, resume=resume)


@pytest.fixture(scope="module")
def data():
    return render_set(32, seed=0, workers=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("tiny-vae")
    task, result = _run(out, 12, data=data)
    return task, result, out


def test_batch_clean_rows_target_the_image_noisy_rows_the_full_decoder(trained):
    task = trained[0]
    x, z, z_in, target = task.batch(5)
    n_noisy = round(CFG.p_noisy * CFG.batch_size)
    clean = slice(0, CFG.batch_size - n_noisy)
    assert torch.equal(z_in[clean], z[clean]) and torch.equal(target[clean], x[clean])
    assert not torch.equal(z_in[-n_noisy:], z[-n_noisy:])
    assert torch.allclose(target[-n_noisy:], task.full_decode(z_in[-n_noisy:]), atol=1e-5)
    # the latents are the full VAE's diffusion-space latents of the images
    assert torch.allclose(z, task.diffusion_latents(x), atol=1e-5)
    again = task.batch(5)
    assert all(torch.equal(a, b) for a, b in zip((x, z, z_in, target), again))


def test_loss_falls_and_export_loads_as_a_decoder(trained):
    _, result, out = trained
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [ln["loss"] for ln in lines if "loss" in ln]
    assert len(losses) == 12 and sum(losses[-3:]) < 0.7 * sum(losses[:3])
    folder = result.export_dir / "tiny_vae"
    config = json.loads((folder / "config.json").read_text())
    assert config["_class_name"] == "AutoencoderTiny" and "block_out_channels" not in config
    assert config["scaling_factor"] == 1.0 and config["shift_factor"] == 0.0
    report = json.loads((result.export_dir / "report.json").read_text())
    assert report["n"] == 6 and 0.0 <= report["tiny_pass_rate"] <= 1.0
    assert report["psnr_full_vs_original"] > 30  # the reference it was distilled from
    record = json.loads((folder / "training.json").read_text())
    assert record["steps"] == 12 and record["config"]["channels"] == CFG.channels
    assert "git_commit" in record["provenance"]
    pipe = flashgen.load("shapes-flash-4step", decoder=str(folder))
    assert pipe.generate(pipe.request("a red circle", seed=0)).images[0].size == (64, 64)


def test_resume_is_exact(tmp_path, data):
    flat = replace(CFG, min_lr_ratio=1.0)  # an LR that does not depend on max_steps
    _run(tmp_path, 4, data=data, task_cfg=flat)
    _, resumed = _run(tmp_path, 6, resume=True, data=data, task_cfg=flat)
    _, straight = _run(tmp_path / "straight", 6, data=data, task_cfg=flat)
    for name in ("model", "ema", "opt"):
        a = load_file(resumed.checkpoint / f"{name}.safetensors")
        b = load_file(straight.checkpoint / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_config_checks():
    with pytest.raises(ValueError, match="same length"):
        TinyVaeTaskConfig(decoder_blocks=(1, 1), encoder_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="p_noisy"):
        TinyVaeTaskConfig(p_noisy=2.0)
