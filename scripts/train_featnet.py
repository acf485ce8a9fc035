"""Train the Shapes World feature network (the embedding of Shapes-FID) and ship it frozen.

    .venv/bin/python scripts/train_featnet.py            # CPU, 2 threads, a few minutes
    .venv/bin/python scripts/train_featnet.py --device cuda --steps 6000

Scenes are drawn from the whole world (every composition, 1-4 objects); the network predicts
counts per (colour, shape) and 4x4 centroid occupancy per shape and per colour. Writes fp16
safetensors with the training settings, final metrics, commit and versions in its metadata, and
prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from flashgen.shapes.dataset import images_to_tensor
from flashgen.shapes.featnet import ASSET, FeatNet, scene_targets, split_targets
from flashgen.shapes.render import render_scenes, sample_scene

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/flashgen/shapes/assets" / ASSET


def batch(rng: np.random.Generator, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    scenes = [sample_scene(rng, allow_pair=None) for _ in range(n)]
    x = images_to_tensor(render_scenes(scenes)).to(device)
    y = torch.from_numpy(np.stack([scene_targets(s) for s in scenes])).to(device)
    return x, y


def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    pc, po = split_targets(pred)
    tc, to = split_targets(target)
    count_loss = F.mse_loss(pc, tc)
    occ_loss = F.binary_cross_entropy_with_logits(po, to)
    return count_loss + occ_loss, {"count_mse": count_loss.item(), "occ_bce": occ_loss.item()}


@torch.no_grad()
def evaluate(net: FeatNet, device: str, n: int = 2000) -> dict:
    x, y = batch(np.random.default_rng(12345), n, device)
    pc, po = split_targets(net(x))
    tc, to = split_targets(y)
    counts_exact = (pc.round() == tc).all(1).float().mean().item()
    occ_acc = ((po > 0).float() == to).float().mean().item()
    return {"val_counts_exact": counts_exact, "val_occupancy_acc": occ_acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--eval-size", type=int, default=2000, help="held-out renders to report on")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = FeatNet().to(args.device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.1)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = batch(rng, args.batch_size, args.device)
        loss, metrics = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            elapsed = time.perf_counter() - t0
            print(
                json.dumps(
                    {"step": step, "loss": round(loss.item(), 4), **metrics, "s": round(elapsed, 1)}
                ),
                flush=True,
            )
    net.eval()
    result = {
        **evaluate(net, args.device),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "commit": _commit(),
        "torch": torch.__version__,
        "params": sum(p.numel() for p in net.parameters()),
    }
    state = {
        k: v.detach().to("cpu", torch.float16).contiguous() for k, v in net.state_dict().items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={k: str(v) for k, v in result.items()})
    result["bytes"] = args.out.stat().st_size
    print(json.dumps(result))


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
