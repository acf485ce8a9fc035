"""Fine-tune the Shapes tiny decoder on teacher-refined latents, so generated shapes decode crisp.

Why: the failure reasons of every Shapes model (benchmarks/results/eval-s7) are led by
`shape_blurred`: squares with rounded corners and soft triangles whose fill ratio sits near a
class boundary (31% of the teacher's objects, 5% of renders'). The decoders were trained on the
encoder's latents of renders; a generator's latents are near, not on, that manifold, and there
both decoders round the corners. This is the decoder fine-tuning of SD's ft-MSE VAE and of
consistency decoders, on pairs whose target is known: a render x, its latent z, z noised to a
sigma s ~ U[0.1, 0.5] and brought back to 0 by the teacher itself (its own 50-step schedule below
s, CFG at its default, the render's caption): z' is a latent of the kind the teacher generates,
and x is what it should decode to. Half of each batch decodes z, half z', both against x (the
tiny decoder's own reconstruction loss); the encoder is not trained.

    .venv/bin/python benchmarks/sharp_decoder.py --out benchmarks/results/sharp-decoder \
        --pairs 4096 --steps 1200 --threads 2   # ~11 min of teacher refinement, ~6 min training

Writes OUT/tiny_vae (a TAESD-layout folder for `--decoder OUT/tiny_vae`, with report.json, the
reconstructions of the evaluation renders as `flashgen train tiny-vae` reports them, and
training.json: this run's settings and the starting decoder's own record), OUT/pairs.pt
(the refined latents, reused on a rerun) and prints one JSON line last. The built-in Shapes tiny
decoder (shapes-teacher/tiny_vae) is this script's output since session 7; it started from the
decoder `flashgen train tiny-vae` made in session 3 (commit fff8642 holds it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import flashgen
from flashgen.bench.env import device_info, git_commit, package_versions
from flashgen.miniature.data import background, render_set, to_model_space
from flashgen.miniature.losses import foreground_weights, reconstruction_loss
from flashgen.miniature.tiny_vae_task import save_tiny_vae, tiny_decoder_report
from flashgen.models.prompt_encoding import PromptEmbeds
from flashgen.models.registry import resolve
from flashgen.sampling.samplers import sample_euler


@torch.no_grad()
def refined_pairs(pipe, x: torch.Tensor, captions: list[str], g: torch.Generator, lo, hi):
    """(z, z'): the VAE latents of `x` (diffusion space) and the teacher's refinement of them
    from sigma s ~ U[lo, hi] (rounded to its own schedule) down to 0."""
    vae = pipe.vae
    scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
    z = (vae.encode(x).latent_dist.mode() - shift) * scale
    cond, uncond = pipe.encode_prompt(captions), pipe.encode_prompt([""])
    grid = pipe.sigmas(pipe.defaults.steps)
    start = torch.searchsorted(-grid, -(lo + (hi - lo) * torch.rand(len(x), generator=g)))
    refined = torch.empty_like(z)
    for k in start.unique():  # rows that start at the same grid point share one Euler run
        rows = (start == k).nonzero().flatten()
        sigmas = grid[k:]
        noise = torch.randn(len(rows), *z.shape[1:], generator=g)
        x_t = (1 - sigmas[0]) * z[rows] + sigmas[0] * noise
        c = PromptEmbeds(cond.embeds[rows], cond.pooled[rows])
        fn = pipe.model_fn(c, pipe.defaults.guidance, uncond.repeat(len(rows)))
        refined[rows] = sample_euler(fn, x_t, sigmas)
    return z, refined


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-teacher", help="the teacher")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="the tiny decoder to start from (default: the model's tiny_vae/; it must not be "
        "an output of this script, so a rerun does not fine-tune twice)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=4096)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--sigma-range", type=float, nargs=2, default=(0.1, 0.5))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    init = args.init or resolve(args.model).path / "tiny_vae"
    init_record = json.loads(t.read_text()) if (t := init / "training.json").is_file() else {}
    if init_record.get("bench") == "sharp_decoder":
        raise SystemExit(
            f"{init} is already this script's output; pass --init with the tiny decoder it "
            "started from (`flashgen train tiny-vae`, see docs/results.md section 5)"
        )
    torch.manual_seed(0)
    t0 = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    pipe = flashgen.load(args.model, device="cpu", decoder="full")  # its VAE encodes the renders
    data = render_set(args.pairs, seed=123)
    x_all = to_model_space(data.images)
    cache = args.out / "pairs.pt"
    if cache.is_file():
        saved = torch.load(cache)
        z_all, refined_all = saved["z"], saved["refined"]
    else:
        g = torch.Generator().manual_seed(1)
        parts = []
        for start in range(0, args.pairs, 128):
            rows = torch.arange(start, min(start + 128, args.pairs))
            parts.append(
                refined_pairs(pipe, x_all[rows], data.caption_list(rows), g, *args.sigma_range)
            )
        z_all = torch.cat([a for a, _ in parts])
        refined_all = torch.cat([b for _, b in parts])
        torch.save({"z": z_all, "refined": refined_all}, cache)
    t_pairs = time.monotonic() - t0

    from diffusers import AutoencoderTiny

    tiny = AutoencoderTiny.from_pretrained(init).float()
    decoder = tiny.decoder.train()
    opt = torch.optim.AdamW(decoder.parameters(), lr=args.lr, betas=(0.9, 0.99))
    bg = background("cpu")
    g = torch.Generator().manual_seed(2)
    half = args.batch_size // 2
    for step in range(args.steps):  # cosine from lr to lr / 10
        lr = args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, args.pairs, (args.batch_size,), generator=g)
        z_in = torch.cat([z_all[idx[:half]], refined_all[idx[half:]]])
        x = x_all[idx]
        loss, _ = reconstruction_loss(
            decoder(z_in), x, foreground_weights(x, bg, 4.0), mse_weight=1.0, grad_weight=0.5
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.5f} {time.monotonic() - t0:.0f}s", flush=True)
    tiny = tiny.eval().half()
    save_tiny_vae(tiny, args.out / "tiny_vae")
    report = tiny_decoder_report(tiny.float(), pipe.vae, "cpu")  # reconstructions of eval renders
    report["weights"] = "the shipped fp16 file, loaded in fp32"
    (args.out / "tiny_vae" / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    record = {
        "bench": "sharp_decoder",
        "model": args.model,
        "pairs": args.pairs,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "sigma_range": list(args.sigma_range),
        "seconds_pairs": round(t_pairs, 1),
        "seconds": round(time.monotonic() - t0, 1),
        "final_loss": loss.item(),
        "report": {k: v for k, v in report.items() if k != "tasks"},
        "init": {"path": str(init), "training": init_record},
        "device": device_info("cpu"),
        "versions": package_versions(),
        "commit": git_commit(),
    }
    (args.out / "tiny_vae" / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
