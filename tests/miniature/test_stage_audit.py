"""Regression tests for bugs found in the audit of the miniature stages (one per finding)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open

from flashgen.miniature import clip_task
from flashgen.miniature import sharp_decoder_task as sharp
from flashgen.miniature.clip_task import ClipTask, ClipTaskConfig
from flashgen.miniature.components import ClipConfig
from flashgen.miniature.data import ShapesSet
from flashgen.miniature.losses import clip_contrastive_loss
from flashgen.miniature.negatives import hard_negative, hard_negative_of_kind
from flashgen.train import TrainContext, TrainRunConfig, run
from flashgen.train.loop import make_accelerator

# -- hard negatives must be false of the scene ------------------------------------------------


def test_binding_negative_never_restates_a_caption_of_alike_phrases():
    # swapping the colours of two 'a <colour> circle' phrases says the same thing again
    for caption in (
        "a photo of a purple circle and a green circle",
        "a yellow triangle, a purple square, a green square and a red square",
    ):
        for seed in range(40):
            rng = np.random.default_rng(seed)
            neg = hard_negative_of_kind(caption, "binding", rng)
            if neg is not None:
                phrases = sorted(neg.removeprefix("a photo of ").replace(" and ", ", ").split(", "))
                orig = sorted(
                    caption.removeprefix("a photo of ").replace(" and ", ", ").split(", ")
                )
                assert phrases != orig, (caption, neg)
    assert (
        hard_negative_of_kind(
            "a purple circle and a green circle", "binding", np.random.default_rng(0)
        )
        is None
    )
    for seed in range(40):  # the other kinds still apply to it
        assert hard_negative(
            "a purple circle and a green circle", np.random.default_rng(seed)
        ) not in ("a green circle and a purple circle",)
    # still a binding negative where the swap changes the scene
    rng = np.random.default_rng(0)
    assert hard_negative_of_kind("a red circle and a blue square", "binding", rng) == (
        "a blue circle and a red square"
    )
    assert hard_negative_of_kind("two red squares and a green square", "binding", rng) == (
        "two green squares and a red square"
    )
    assert hard_negative_of_kind("a red circle left of a blue circle", "binding", rng) == (
        "a blue circle left of a red circle"
    )


# -- CLIP: a hard negative that is another image's true caption is not a negative for it ------


def test_contrastive_loss_masks_negatives_equal_to_an_images_own_caption():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(3, 8, generator=g)
    txt = torch.randn(3, 8, generator=g)
    neg = torch.randn(3, 8, generator=g)
    neg[1] = txt[0]  # row 1's negative is row 0's caption
    same = torch.eye(3, dtype=torch.bool)
    scale = torch.tensor(2.0)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 1] = True
    masked, _ = clip_contrastive_loss(img, txt, neg, same, scale, mask)
    keep = torch.tensor([0, 2])
    # the reference: image 0 without that column (images 1, 2 keep it), by hand
    s = scale.exp()
    i = torch.nn.functional.normalize(img, dim=-1)
    t = torch.nn.functional.normalize(txt, dim=-1)
    n = torch.nn.functional.normalize(neg, dim=-1)
    logits = s * i @ torch.cat([t, n]).T
    rows = [
        torch.cat([logits[0, :3], logits[0, 3 + keep]]),
        logits[1],
        logits[2],
    ]
    i2t = torch.stack(
        [
            torch.nn.functional.cross_entropy(r[None], torch.tensor([k]))[None]
            for k, r in enumerate(rows)
        ]
    ).mean()
    t2i = torch.nn.functional.cross_entropy(s * t @ i.T, torch.arange(3))
    assert torch.allclose(masked, 0.5 * (i2t + t2i), atol=1e-6)


def test_clip_step_masks_negatives_that_are_the_batch_images_captions(monkeypatch, tmp_path):
    captions = ["", "a red circle", "a blue circle", "a green circle", "a red square"]
    ids = torch.tensor([1, 2, 3, 4] * 4)
    data = ShapesSet(torch.zeros(len(ids), 64, 64, 3, dtype=torch.uint8), ids, captions)
    cfg = ClipTaskConfig(
        clip_l=ClipConfig(hidden_size=32, num_layers=2, num_heads=2, projection_dim=16),
        clip_g=ClipConfig(
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            projection_dim=16,
            pad_token="!",
            hidden_act="gelu",
        ),
        n_images=len(ids),
        batch_size=16,
        negatives_per_caption=6,
        negatives_per_step=3,
        image_width=32,
    )
    run_cfg = TrainRunConfig(max_steps=1, out_dir=str(tmp_path), device="cpu", mixed_precision="no")
    task = ClipTask(cfg, data)
    task.setup(TrainContext(accelerator=make_accelerator(run_cfg), run=run_cfg))
    seen = []
    real = clip_task.clip_contrastive_loss

    def spy(img, txt, neg, same, scale, *rest):
        seen.append(rest[0] if rest else None)
        return real(img, txt, neg, same, scale, *rest)

    monkeypatch.setattr(clip_task, "clip_contrastive_loss", spy)
    x, caps, pick = task.batch(0)
    task.train_step((x, caps, pick), 0)
    b, k = pick.shape
    rows = caps[:, None].expand(b, k)
    negs = task.tok_l.batch_decode(task.neg_l[rows, pick].flatten(0, 1), skip_special_tokens=True)
    truth = torch.tensor([[n.strip() == captions[c] for n in negs] for c in caps.tolist()])
    assert truth.any()  # the batch does hold such negatives
    assert len(seen) == 2
    for mask in seen:
        assert mask is not None and torch.equal(mask.cpu(), truth)


# -- sharp decoder: the pairs cache is keyed on what made the pairs ---------------------------


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from flashgen.models.modelcard import ModelCard
    from flashgen.models.tiny import build_taesd3_layout, build_tiny_sd35

    root = tmp_path_factory.mktemp("sharp-audit")
    card = ModelCard(
        name="t",
        default_steps=3,
        default_guidance=2.0,
        tiny_decoder="tiny_vae",
        default_decoder="tiny",
    )
    folder = build_tiny_sd35(root / "t", with_t5=False, seed=3, card=card)
    build_taesd3_layout(folder / "tiny_vae", seed=1)
    return folder


def _sharp_run(out, teacher, **kw):
    cfg = sharp.SharpDecoderTaskConfig(
        **{
            "model": str(teacher),
            "n_pairs": 8,
            "pair_batch": 4,
            "batch_size": 4,
            "report_prompts": 1,
            **kw,
        }
    )
    run_cfg = TrainRunConfig(
        max_steps=1,
        out_dir=str(out),
        device="cpu",
        mixed_precision="no",
        log_every=1,
        ckpt_every=1,
        seed=0,
    )
    return run(sharp.SharpDecoderTask(cfg), run_cfg)


def test_sharp_decoder_pairs_made_with_other_settings_are_made_again(
    tmp_path, teacher, monkeypatch
):
    _sharp_run(tmp_path, teacher, sigma_min=0.1, sigma_max=0.5)
    # a setup killed before its first checkpoint leaves the pairs without one: a new run with
    # another sigma range must not train on the old range's pairs
    shutil.rmtree(tmp_path / "checkpoints")
    calls = []
    real = sharp.refined_pairs

    def counting(pipe, x, captions, g, lo, hi):
        calls.append((lo, hi))
        return real(pipe, x, captions, g, lo, hi)

    monkeypatch.setattr(sharp, "refined_pairs", counting)
    _sharp_run(tmp_path, teacher, sigma_min=0.6, sigma_max=0.9)
    assert calls and all(c == (0.6, 0.9) for c in calls)
    with safe_open(str(tmp_path / sharp.PAIRS_FILE), framework="pt") as f:
        assert "0.9" in f.metadata()["key"]
