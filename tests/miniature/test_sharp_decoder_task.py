"""`flashgen train sharp-decoder`: the teacher-refined pairs, the batches, a decoder that learns
and loads, the pairs cache on resume, and the refusal to sharpen a sharpened decoder."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

import flashgen
from flashgen.miniature import sharp_decoder_task as sharp
from flashgen.miniature.sharp_decoder_task import SharpDecoderTask, SharpDecoderTaskConfig
from flashgen.models.modelcard import ModelCard
from flashgen.models.tiny import build_taesd3_layout, build_tiny_sd35
from flashgen.train import TrainRunConfig, run


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A random SD3.5-layout teacher (3 steps, CFG 2) with its own TAESD3-layout tiny decoder."""
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("sharp")
    card = ModelCard(
        name="t", default_steps=3, default_guidance=2.0, tiny_decoder="tiny_vae",
        default_decoder="tiny",
    )  # fmt: skip
    folder = build_tiny_sd35(root / "t", with_t5=False, seed=3, card=card)
    build_taesd3_layout(folder / "tiny_vae", seed=1)
    return folder


def _cfg(teacher, **kw) -> SharpDecoderTaskConfig:
    base = {
        "model": str(teacher),
        "n_pairs": 8,
        "pair_batch": 4,
        "batch_size": 4,
        "report_prompts": 1,
    }
    return SharpDecoderTaskConfig(**{**base, **kw})


def _run(out, steps, task_cfg, *, resume=False):
    cfg = TrainRunConfig(
        max_steps=steps, out_dir=str(out), device="cpu", mixed_precision="no", log_every=1,
        ckpt_every=2, seed=0,
    )  # fmt: skip
    task = SharpDecoderTask(task_cfg)
    return task, run(task, cfg, resume=resume)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, teacher):
    out = tmp_path_factory.mktemp("sharp-run")
    task, result = _run(out, 4, _cfg(teacher))
    return task, result, out


def _pairs(pipe, lo, hi, seed=0):
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(7)) * 2 - 1
    g = torch.Generator().manual_seed(seed)
    return sharp.refined_pairs(pipe, x, ["a red circle", "two squares", ""], g, lo, hi)


def test_refined_pairs_are_the_teachers_path_from_a_noised_latent():
    pipe = flashgen.load("tiny-random", device="cpu")
    z, refined = _pairs(pipe, 0.1, 0.5)
    assert z.shape == refined.shape and torch.isfinite(refined).all()
    assert not torch.equal(z, refined)  # the teacher moved them
    z2, refined2 = _pairs(pipe, 0.1, 0.5)
    assert torch.equal(z, z2) and torch.equal(refined, refined2)  # deterministic per generator
    # below every sigma of the schedule but 0 there is nothing to integrate: z' = z
    z0, refined0 = _pairs(pipe, 1e-6, 1e-6)
    torch.testing.assert_close(refined0, z0)


def test_clean_rows_decode_z_the_rest_the_refined_latents_all_against_the_render(trained):
    task = trained[0]
    z_in, x = task.batch(3)
    g = task.ctx.generator(3)
    idx = torch.randint(0, 8, (4,), generator=g)
    assert torch.equal(z_in[:2], task.z[idx[:2]]) and torch.equal(z_in[2:], task.refined[idx[2:]])
    assert torch.equal(x, task.x[idx])
    assert not torch.equal(task.z, task.refined)
    again = task.batch(3)
    assert torch.equal(again[0], z_in) and torch.equal(again[1], x)


def test_export_loads_as_a_decoder_with_only_the_decoder_trained(trained, teacher):
    _, result, out = trained
    folder = result.export_dir / "tiny_vae"
    start = load_file(teacher / "tiny_vae" / "diffusion_pytorch_model.safetensors")
    done = load_file(folder / "diffusion_pytorch_model.safetensors")
    assert all(v.dtype == torch.float16 for v in done.values())
    changed = {k for k in start if not torch.equal(start[k].half(), done[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert any(k.startswith("encoder.") for k in start)  # the encoder is there, unchanged
    record = json.loads((folder / "training.json").read_text())
    assert record["task"] == "sharp-decoder" and record["steps"] == 4
    assert record["init"]["path"] == str(teacher / "tiny_vae")
    report = json.loads((folder / "report.json").read_text())
    assert 0 <= report["tiny_pass_rate"] <= 1 and report["n"] == 1
    pipe = flashgen.load(str(teacher), decoder=str(folder))
    image = pipe.generate(pipe.request("a red circle", steps=1, seed=0)).images[0]
    assert image.size == (64, 64)
    assert (out / sharp.PAIRS_FILE).is_file()


def test_a_sharpened_decoder_is_refused_as_a_start(trained, teacher):
    folder = trained[1].export_dir / "tiny_vae"
    with pytest.raises(ValueError, match="already a sharpened decoder"):
        sharp.starting_decoder(_cfg(teacher, init=str(folder)))
    with pytest.raises(ValueError, match="already a sharpened decoder"):  # the session-7 script's
        legacy = folder.parent / "legacy"
        legacy.mkdir()
        for f in ("config.json", "diffusion_pytorch_model.safetensors"):
            (legacy / f).write_bytes((folder / f).read_bytes())
        (legacy / "training.json").write_text(json.dumps({"bench": "sharp_decoder"}))
        sharp.starting_decoder(_cfg(teacher, init=str(legacy)))
    assert sharp.starting_decoder(_cfg(teacher))[0] == teacher / "tiny_vae"


def test_a_resumed_run_reuses_the_pairs_and_ends_where_an_unbroken_one_does(
    tmp_path, teacher, monkeypatch
):
    cfg = _cfg(teacher, min_lr_ratio=1.0)  # an LR that does not depend on max_steps
    _, straight = _run(tmp_path / "straight", 4, cfg)
    _run(tmp_path, 2, cfg)

    def refuse(*a, **k):
        raise AssertionError("a resumed run must not refine the pairs again")

    monkeypatch.setattr(sharp, "refined_pairs", refuse)
    _, result = _run(tmp_path, 4, cfg, resume=True)
    resumed = load_file(result.export_dir / "tiny_vae" / "diffusion_pytorch_model.safetensors")
    unbroken = load_file(straight.export_dir / "tiny_vae" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(resumed[k], unbroken[k]) for k in unbroken)


def test_bad_settings_are_refused():
    for bad in (
        {"sigma_min": 0.0}, {"sigma_min": 0.6, "sigma_max": 0.5}, {"clean_share": 1.5},
        {"batch_size": 1}, {"ema_decay": 1.0},
    ):  # fmt: skip
        with pytest.raises(ValueError, match="task\\."):
            replace(SharpDecoderTaskConfig(), **bad)
