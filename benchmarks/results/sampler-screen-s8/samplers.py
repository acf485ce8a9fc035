"""Session 8: does the teacher's sampler hold back its alignment? A screen on the validation prompts.

Each config samples the 147 validation lines (one image each, their seeds) with the teacher at
its defaults except what the config changes, batched 21 prompts at a time, and scores the same
latents decoded by the tiny decoder and by the full VAE. Variants:
- eta: stochastic sampling. Each step predicts x0 = x - s v and the noise n = x + (1 - s) v, and
  re-noises to the next sigma s' with x = (1 - s') x0 + s' (sqrt(1 - eta^2) n + eta eps)
  (eta = 0 is exactly the Euler step);
- g_lo / g_hi: CFG only for sigma in [g_lo, g_hi] (guidance-interval sampling), the
  conditional velocity elsewhere;
- cfg: the guidance scale.

    .venv/bin/python benchmarks/results/sampler-screen-s8/samplers.py \
        --out benchmarks/results/sampler-screen-s8/val.jsonl --configs '[{"steps":50},{"eta":0.3},...]'

The first line of val.jsonl is the baseline (Euler, the defaults); every line holds per-image
verdicts, so differences can be paired. Not a shipped sampler: nothing beat the baseline
beyond noise (docs/results.md, section 6).
"""

import argparse
import json
import time

import torch

from flashgen.pipeline import load
from flashgen.shapes.failures import failure_counts
from flashgen.shapes.prompt_sets import load_prompt_set
from flashgen.shapes.scorer import score_alignment

p = argparse.ArgumentParser()
p.add_argument("--set", default="validation")
p.add_argument("--configs", required=True, help="json list of dicts")
p.add_argument("--k", type=int, default=1)
p.add_argument("--model", default="shapes-teacher")
p.add_argument("--out", default=None)
a = p.parse_args()
torch.set_num_threads(2)
pipe = load(a.model, decoder="tiny")
full = load(a.model)
lines = load_prompt_set(a.set)
prompts = [l["prompt"] for l in lines for j in range(a.k)]
seeds = [l["seed"] + j for l in lines for j in range(a.k)]
tasks = [l["task"] for l in lines for j in range(a.k)]


def run(cfg):
    steps, g, shift = cfg.get("steps", 50), cfg.get("cfg", 4.5), cfg.get("shift", None)
    eta = cfg.get("eta", 0.0)
    lo, hi = cfg.get("g_lo", 0.0), cfg.get("g_hi", 1.01)
    from flashgen.sampling.schedules import make_sigmas

    sig = make_sigmas(steps, shift) if shift else pipe.sigmas(steps)
    gen = torch.Generator().manual_seed(cfg.get("noise_seed", 0))
    outs = []
    B = 21
    for b in range(0, len(prompts), B):
        P, S = prompts[b : b + B], seeds[b : b + B]
        with torch.no_grad():
            cond = pipe.encode_prompt(P)
            unc = pipe.encode_prompt([""] * len(P))
            x = pipe.prepare_latents(S, 64, 64)
            f_g = pipe.model_fn(cond, g, unc)
            f_c = pipe.model_fn(cond, 1.0)
            for i in range(steps):
                s, s2 = sig[i], sig[i + 1]
                f = f_g if lo <= float(s) <= hi else f_c
                v = f(x, s)
                if eta > 0 and float(s2) > 0:
                    x0 = x - s * v
                    n = x + (1 - s) * v
                    e = eta * float(s2) ** cfg.get("eta_pow", 0.0) if cfg.get("eta_pow") else eta
                    x = (1 - s2) * x0 + s2 * (
                        (1 - e**2) ** 0.5 * n + e * torch.randn(x.shape, generator=gen)
                    )
                else:
                    x = x + (s2 - s) * v
            outs.append(x)
    x = torch.cat(outs)
    res = {}
    for name, pp in (("tiny", pipe), ("full", full)):
        ims = []
        for b in range(0, len(x), 64):
            ims += pp.decode(x[b : b + 64])
        sc = score_alignment(zip(prompts, ims, tasks))
        fc = failure_counts(zip(prompts, sc.detections))
        res[name] = {
            "overall": round(sc.overall, 4),
            "tasks": {k: round(v, 3) for k, v in sc.tasks.items()},
            "fail": fc,
        }
        res[name + "_correct"] = sc.correct
    return res


for cfg in json.loads(a.configs):
    t0 = time.time()
    r = run(cfg)
    line = {
        "cfg": cfg,
        "set": a.set,
        "k": a.k,
        "tiny": r["tiny"]["overall"],
        "full": r["full"]["overall"],
        "tasks_tiny": r["tiny"]["tasks"],
        "sec": round(time.time() - t0),
    }
    print(json.dumps(line), flush=True)
    if a.out:
        with open(a.out, "a") as fh:
            fh.write(
                json.dumps(
                    {
                        **line,
                        "correct_tiny": r["tiny_correct"],
                        "correct_full": r["full_correct"],
                        "fail_tiny": r["tiny"]["fail"],
                    }
                )
                + "\n"
            )
