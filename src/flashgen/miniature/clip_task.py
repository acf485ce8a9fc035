"""Stage 2: CLIP-L and CLIP-G text encoders, pretrained contrastively on Shapes World.

Both text towers learn against one small image tower (a CNN over the 64x64 pixels, discarded
after training; its flattened 4x4 feature map keeps where things are, which relations need),
each through its own projection and temperature:

    L = InfoNCE(image_L, CLIP-L(caption), hard negatives) + InfoNCE(image_G, CLIP-G(caption), ...)

Hard negatives (negatives.py) are the caption with one colour, shape, count, relation or binding
changed, so the encoders must tell those words apart, which plain in-batch negatives rarely
force. Export: the two CLIPTextModelWithProjection folders and report.json (retrieval accuracy and
hard-negative accuracy per kind on a freshly rendered set).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flashgen.miniature.components import CLIP_G, CLIP_L, ClipConfig, build_clip
from flashgen.miniature.data import ShapesSet, batch_indices, render_set, to_model_space
from flashgen.miniature.losses import clip_contrastive_loss
from flashgen.miniature.negatives import KINDS, hard_negative, hard_negative_of_kind
from flashgen.miniature.schedule import Progress, apply_lr
from flashgen.miniature.text import repad, tokenize
from flashgen.models.tokenizers import clip_tokenizer
from flashgen.train import TrainContext, TrainTask


@dataclass(frozen=True)
class ClipTaskConfig:
    clip_l: ClipConfig = field(default_factory=lambda: CLIP_L)
    clip_g: ClipConfig = field(default_factory=lambda: CLIP_G)
    n_images: int = 20_000  # images used (the first n of the set; rendered if none is passed)
    batch_size: int = 128
    negatives_per_caption: int = 3  # pool of hard negatives made per unique caption
    negatives_per_step: int = 1  # drawn from the pool for each sample of a step
    image_width: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    time_schedule: bool = False
    report_images: int = 1024  # fresh images for the exported report

    def __post_init__(self) -> None:
        if not 1 <= self.negatives_per_step <= self.negatives_per_caption:
            raise ValueError(
                "task.negatives_per_step must be in 1..negatives_per_caption, got "
                f"{self.negatives_per_step} (pool {self.negatives_per_caption})"
            )
        if self.clip_l.max_length != self.clip_g.max_length:
            raise ValueError("task.clip_l and task.clip_g must share max_length")


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
    )


class ImageTower(nn.Module):
    """64x64x3 -> 4x4xC (four stride-2 blocks) -> flatten -> one embedding per text tower."""

    def __init__(self, width: int, out_dims: tuple[int, int]) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_block(3, w // 2),
            _conv_block(w // 2, w),
            _conv_block(w, 2 * w),
            _conv_block(2 * w, 2 * w),
        )
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 4 * w), nn.SiLU())
        self.heads = nn.ModuleList([nn.Linear(4 * w, d) for d in out_dims])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(self.features(x))
        return [head(h) for head in self.heads]


class DualClip(nn.Module):
    """Image tower + CLIP-L + CLIP-G + two temperatures, one forward (for DDP)."""

    def __init__(self, cfg: ClipTaskConfig) -> None:
        super().__init__()
        self.clip_l = build_clip(cfg.clip_l)
        self.clip_g = build_clip(cfg.clip_g)
        dims = (cfg.clip_l.projection_dim, cfg.clip_g.projection_dim)
        self.image = ImageTower(cfg.image_width, dims)
        self.logit_scale = nn.Parameter(torch.full((2,), float(np.log(1 / 0.07))))

    def forward(self, x, ids_l, ids_g):
        img_l, img_g = self.image(x)
        txt_l = self.clip_l(input_ids=ids_l).text_embeds
        txt_g = self.clip_g(input_ids=ids_g).text_embeds
        return img_l, img_g, txt_l, txt_g, self.logit_scale


class ClipTask(TrainTask):
    config_cls = ClipTaskConfig

    def __init__(self, cfg: ClipTaskConfig | None = None, data: ShapesSet | None = None) -> None:
        super().__init__(cfg)
        self.data = data

    def setup(self, ctx: TrainContext) -> None:
        t_setup = time.monotonic()  # the trainer's clock includes setup
        self.ctx = ctx
        cfg = self.cfg
        if self.data is None:
            self.data = render_set(cfg.n_images, seed=ctx.run.seed)
        n = min(cfg.n_images, len(self.data))
        dev = ctx.device
        self.images = self.data.images[:n].to(dev)
        self.caption_ids = self.data.caption_ids[:n].to(dev)
        used = sorted(set(self.data.caption_ids[:n].tolist()))
        # token tables indexed by the set's caption ids (rows of unused captions stay padding)
        captions = [self.data.captions[i] for i in used]
        rng = np.random.default_rng([ctx.run.seed, 2])
        k = cfg.negatives_per_caption
        negatives = [hard_negative(c, rng) for c in captions for _ in range(k)]
        self.tok_l = clip_tokenizer(cfg.clip_l.max_length, cfg.clip_l.pad_token)
        self.tok_g = clip_tokenizer(cfg.clip_g.max_length, cfg.clip_g.pad_token)
        rows = torch.tensor(used)
        size = (len(self.data.captions), cfg.clip_l.max_length)
        self.pos_l = torch.full(size, self.tok_l.pad_token_id, dtype=torch.long)
        self.pos_g = torch.full(size, self.tok_g.pad_token_id, dtype=torch.long)
        # one tokenisation serves both towers: only the pad token differs
        eos, pad_g = self.tok_l.eos_token_id, self.tok_g.pad_token_id
        ids = tokenize(self.tok_l, captions)
        self.pos_l[rows], self.pos_g[rows] = ids, repad(ids, eos, pad_g)
        self.neg_l = torch.zeros(size[0], k, size[1], dtype=torch.long)
        self.neg_g = torch.zeros_like(self.neg_l)
        ids = tokenize(self.tok_l, negatives)
        self.neg_l[rows] = ids.view(len(used), k, -1)
        self.neg_g[rows] = repad(ids, eos, pad_g).view(len(used), k, -1)
        # a negative may be another scene's true caption ('a blue circle' made from 'a red
        # circle'): its caption id (-1: none) lets a batch mask it for the images it describes
        table = {c: i for i, c in enumerate(self.data.captions)}
        self.neg_caption = torch.full((size[0], k), -1, dtype=torch.long)
        self.neg_caption[rows] = torch.tensor(
            [table.get(c, -1) for c in negatives], dtype=torch.long
        ).view(len(used), k)
        self.pos_l, self.pos_g, self.neg_l, self.neg_g, self.neg_caption = (
            t.to(dev) for t in (self.pos_l, self.pos_g, self.neg_l, self.neg_g, self.neg_caption)
        )
        model = DualClip(cfg)
        opt = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay
        )
        self.model, self.opt = ctx.prepare(model, opt)
        self.batch_size = cfg.batch_size
        self.progress = Progress.for_stage(ctx.run, cfg.time_schedule, 10.0, t_setup)

    def state(self) -> dict:
        return {"model": self.model, "opt": self.opt}

    def batch(self, step: int):
        # drawn on the data's device: a host-to-GPU copy per step would synchronise the stream
        g = self.ctx.generator(step, device=self.images.device.type)
        idx = batch_indices(len(self.images), self.cfg.batch_size, g)
        k = self.cfg.negatives_per_step
        pool = torch.rand(len(idx), self.cfg.negatives_per_caption, generator=g, device=g.device)
        pick = pool.argsort(dim=1)[:, :k]  # k distinct negatives per sample
        caps = self.caption_ids[idx]
        return to_model_space(self.images[idx]).to(self.ctx.device), caps, pick

    def train_step(self, batch, step: int) -> dict[str, float]:
        cfg = self.cfg
        x, caps, pick = batch
        apply_lr(self.opt, step, self.progress(step), cfg)
        b, k = pick.shape
        rows = caps[:, None].expand(b, k)
        ids_l = torch.cat([self.pos_l[caps], self.neg_l[rows, pick].flatten(0, 1)])
        ids_g = torch.cat([self.pos_g[caps], self.neg_g[rows, pick].flatten(0, 1)])
        same = caps[:, None] == caps[None, :]
        neg_true = caps[:, None] == self.neg_caption[rows, pick].flatten()[None, :]  # [B, B*K]
        with self.ctx.autocast():
            img_l, img_g, txt_l, txt_g, scale = self.model(x, ids_l, ids_g)
        loss_l, m_l = clip_contrastive_loss(img_l, txt_l[:b], txt_l[b:], same, scale[0], neg_true)
        loss_g, m_g = clip_contrastive_loss(img_g, txt_g[:b], txt_g[b:], same, scale[1], neg_true)
        loss = loss_l + loss_g
        self.opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        self.ctx.clip_grad_norm(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        with torch.no_grad():
            self.ctx.unwrap(self.model).logit_scale.clamp_(
                0, float(np.log(100.0))
            )  # CLIP's cap on the temperature
        return {  # tensors: read by the loop at log time
            "loss": loss.detach(),
            "acc_l": m_l["acc"],
            "hard_l": m_l["hard_neg_acc"],
            "acc_g": m_g["acc"],
            "hard_g": m_g["hard_neg_acc"],
        }

    @torch.no_grad()
    def report(self) -> dict:
        """Accuracy on fresh images: image->caption top-1 within the set, and the share of
        hard negatives of each kind ranked below the true caption, per text tower."""
        model = self.ctx.unwrap(self.model).eval()
        fresh = render_set(self.cfg.report_images, seed=self.ctx.run.seed + 7919, workers=1)
        dev = self.ctx.device
        captions = fresh.caption_list(torch.arange(len(fresh)))
        rng = np.random.default_rng(0)
        x = to_model_space(fresh.images).to(dev)
        img = [torch.nn.functional.normalize(e, dim=-1) for e in model.image(x)]
        out: dict = {"n": len(fresh)}
        for t, (name, tok, enc) in enumerate(
            (("clip_l", self.tok_l, model.clip_l), ("clip_g", self.tok_g, model.clip_g))
        ):
            emb = enc(input_ids=tokenize(tok, captions).to(dev)).text_embeds
            emb = torch.nn.functional.normalize(emb, dim=-1)
            sims = img[t] @ emb.T
            ids = fresh.caption_ids.to(dev)
            same = ids[:, None] == ids[None, :]
            best = sims.masked_fill(
                same & ~torch.eye(len(captions), dtype=torch.bool, device=dev), float("-inf")
            ).argmax(1)
            res = {
                "retrieval_top1": float(
                    (best == torch.arange(len(captions), device=dev)).float().mean()
                )
            }
            for kind in KINDS:
                pairs = [(i, hard_negative_of_kind(c, kind, rng)) for i, c in enumerate(captions)]
                pairs = [(i, neg) for i, neg in pairs if neg is not None]
                if not pairs:
                    continue
                idx = torch.tensor([i for i, _ in pairs], device=dev)
                neg = enc(input_ids=tokenize(tok, [n for _, n in pairs]).to(dev)).text_embeds
                neg = torch.nn.functional.normalize(neg, dim=-1)
                pos_sim = (img[t][idx] * emb[idx]).sum(-1)
                neg_sim = (img[t][idx] * neg).sum(-1)
                res[f"hard_{kind}"] = float((pos_sim > neg_sim).float().mean())
            out[name] = res
        model.train()
        return out

    def export(self, out_dir: Path) -> None:
        model = self.ctx.unwrap(self.model)
        model.clip_l.save_pretrained(out_dir / "text_encoder", safe_serialization=True)
        model.clip_g.save_pretrained(out_dir / "text_encoder_2", safe_serialization=True)
        self.tok_l.save_pretrained(out_dir / "tokenizer")
        self.tok_g.save_pretrained(out_dir / "tokenizer_2")
        (out_dir / "report.json").write_text(json.dumps(self.report(), indent=2) + "\n")
