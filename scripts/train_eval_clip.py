"""Train the Shapes World evaluation CLIP: the CLIP model `flashgen eval clip-score` and
`flashgen eval run --clip-model` use on this benchmark, where no real CLIP can be downloaded.

    .venv/bin/python scripts/train_eval_clip.py                      # CPU, ~20 min on 1 thread
    .venv/bin/python scripts/train_eval_clip.py --device cuda --steps 20000

A transformers `CLIPModel` of the real layout (ViT image tower, CLIP text tower with the real
BPE tokenizer), small, trained from scratch with CLIP's symmetric InfoNCE on freshly rendered
Shapes World images and their captions, plus one hard negative caption per image (a colour,
shape, count, relation, binding or order swapped; miniature/negatives.py), as the generator's
own CLIP encoders were. It is independent of the models it scores: its own architecture, seed
and images (the shipped models' text encoders are never used to judge their own images).

Writes a CLIPModel folder (fp16 model.safetensors, preprocessor_config.json; no tokenizer files:
the loader rebuilds the real CLIP tokenizer, padded to the model's 32 positions) and
report.json: image->caption retrieval on fresh renders, the share of hard negatives of each kind
ranked below the true caption, and the CLIP score of the evaluation prompts' ground-truth
renders against their own prompts and against shuffled ones. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

from flashgen.bench.env import git_commit, package_versions
from flashgen.miniature.data import render_set
from flashgen.miniature.losses import clip_contrastive_loss
from flashgen.miniature.negatives import KINDS, hard_negative, hard_negative_of_kind
from flashgen.miniature.text import tokenize
from flashgen.models.tokenizers import clip_tokenizer

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "benchmarks/results/clip-score/shapes-clip"
MAX_TOKENS = 32  # Shapes World captions are at most ~16 CLIP tokens
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's normalisation (the processor's)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build(seed: int) -> CLIPModel:
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "hidden_size": 48,
            "intermediate_size": 192,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "max_position_embeddings": MAX_TOKENS,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 8,
        },
        projection_dim=64,
    )
    return CLIPModel(config)


def pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 64, 64, 3] -> CLIP-normalised [N, 3, 64, 64] (what the saved processor does:
    64 px needs no resize or crop)."""
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def features(model: CLIPModel, x: torch.Tensor, ids: torch.Tensor):
    img = model.get_image_features(pixel_values=x)
    txt = model.get_text_features(input_ids=ids)
    return img.pooler_output, txt.pooler_output


@torch.no_grad()
def report(model: CLIPModel, tok, out: Path, n: int = 1024) -> dict:
    """Retrieval and hard-negative accuracy on fresh renders, and CLIP scores of the evaluation
    prompts' ground-truth renders (through the saved folder, as users score)."""
    from flashgen.eval.clip_score import load_clip_scorer, summarize
    from flashgen.shapes.export import render_prompt
    from flashgen.shapes.prompt_sets import load_prompt_set

    model.eval()
    fresh = render_set(n, seed=424_242, workers=1)
    keep = [i for i in range(n) if fresh.caption_list(torch.tensor([i]))[0]]  # no empty ones
    idx = torch.tensor(keep)
    captions = fresh.caption_list(idx)
    img, emb = features(model, pixels(fresh.images[idx]), tokenize(tok, captions))
    img = torch.nn.functional.normalize(img, dim=-1)
    emb = torch.nn.functional.normalize(emb, dim=-1)
    ids = fresh.caption_ids[idx]
    same = ids[:, None] == ids[None, :]
    sims = (img @ emb.T).masked_fill(same & ~torch.eye(len(idx), dtype=torch.bool), -2.0)
    result: dict = {"n": len(idx)}
    result["retrieval_top1"] = float((sims.argmax(1) == torch.arange(len(idx))).float().mean())
    rng = np.random.default_rng(0)
    for kind in KINDS:
        pairs = [(i, hard_negative_of_kind(c, kind, rng)) for i, c in enumerate(captions)]
        pairs = [(i, neg) for i, neg in pairs if neg is not None]
        if not pairs:
            continue
        rows = torch.tensor([i for i, _ in pairs])
        neg = torch.nn.functional.normalize(
            model.get_text_features(input_ids=tokenize(tok, [s for _, s in pairs])).pooler_output,
            dim=-1,
        )
        pos_sim, neg_sim = (img[rows] * emb[rows]).sum(-1), (img[rows] * neg).sum(-1)
        result[f"hard_{kind}"] = float((pos_sim > neg_sim).float().mean())
    lines = load_prompt_set("eval")
    renders = [render_prompt(x["prompt"], x["seed"]) for x in lines]
    prompts = [x["prompt"] for x in lines]
    scorer = load_clip_scorer(out)
    own = scorer.scores(renders, prompts)
    shuffled = scorer.scores(renders, list(np.random.default_rng(1).permutation(prompts)))
    result["eval_renders_own_prompts"] = summarize(own)
    result["eval_renders_shuffled_prompts"] = summarize(shuffled)
    model.train()
    return result


def save(model: CLIPModel, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    # no tokenizer files (3.6 MB): load_clip_scorer rebuilds the real CLIP tokenizer offline
    CLIPImageProcessorPil(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    ).save_pretrained(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--images", type=int, default=100_000, help="rendered once, then sampled")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    data = render_set(args.images, seed=args.seed, workers=1)
    usable = torch.tensor([c != "" for c in data.captions])[data.caption_ids]
    rows = torch.nonzero(usable).flatten()
    tok = clip_tokenizer(MAX_TOKENS)
    caption_ids = tokenize(tok, data.captions)  # one row per distinct caption
    model = build(args.seed).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, min(200, args.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup)
            * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(s, args.steps) / args.steps)))
        ),
    )
    table = {c: i for i, c in enumerate(data.captions)}  # a negative that is a true caption
    g = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    log = []
    for step in range(args.steps):
        pick = rows[torch.randint(len(rows), (args.batch_size,), generator=g)]
        caps = data.caption_ids[pick]
        captions = [data.captions[i] for i in caps.tolist()]
        negatives = [hard_negative(c, rng) for c in captions]
        neg_ids = tokenize(tok, negatives)
        neg_caps = torch.tensor([table.get(c, -1) for c in negatives])
        x = pixels(data.images[pick]).to(args.device)
        ids = torch.cat([caption_ids[caps], neg_ids]).to(args.device)
        img, txt = features(model, x, ids)
        b = len(pick)
        same = (caps[:, None] == caps[None, :]).to(args.device)
        neg_true = (caps[:, None] == neg_caps[None, :]).to(args.device)
        loss, m = clip_contrastive_loss(img, txt[:b], txt[b:], same, model.logit_scale, neg_true)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, float(np.log(100.0)))
        if step % 100 == 0 or step == args.steps - 1:
            row = {
                "step": step,
                "loss": float(loss),
                "acc": float(m["acc"]),
                "hard_neg_acc": float(m["hard_neg_acc"]),
                "seconds": round(time.time() - t0),
            }
            log.append(row)
            print(json.dumps(row), flush=True)
    model = model.cpu()
    save(model, args.out)
    result = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "images": args.images,
        "seed": args.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(time.time() - t0),
        "report": report(model, tok, args.out),
        "log": log,
        "device": args.device,
        "commit": git_commit(),
        "versions": package_versions(),
    }
    (args.out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "log"}))


if __name__ == "__main__":
    main()
