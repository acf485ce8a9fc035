"""How far does one word of the prompt move the denoiser's prediction? A direct read-out.

For a base prompt and edits of one word (`--set relation`: the relation reversed, another
relation, the relation dropped, the order of the shapes swapped, another shape, a colour added,
the empty prompt; `--set placement`: the same for an absolute side, 'on the left'), the
velocity prediction is computed on the same noisy latents at a few noise levels, and the change
is reported as |v(edit) - v(base)| / |v(base)| (mean over the latents). A word the denoiser reads
moves it by ~10-30% (another shape, a colour); a word it ignores by ~1% (what any small change of
the token sequence does). Complements benchmarks/relation_probe.py (a likelihood test on renders)
and benchmarks/conditioning_probe.py (what the encoders carry): this one needs no renders and
takes seconds.

    .venv/bin/python benchmarks/word_sensitivity.py --model shapes-teacher
"""

from __future__ import annotations

import argparse
import time

import torch

from flashgen.bench.env import finish, provenance

SETS: dict[str, tuple[str, dict[str, str]]] = {
    "relation": (
        "a photo of a circle left of a square",
        {
            "relation reversed": "a photo of a circle right of a square",
            "another relation (above)": "a photo of a circle above a square",
            "relation dropped (and)": "a photo of a circle and a square",
            "shapes' order swapped": "a photo of a square left of a circle",
            "another shape (triangle)": "a photo of a circle left of a triangle",
            "a colour added (red)": "a photo of a red circle left of a square",
            "empty prompt": "",
        },
    ),
    # absolute sides: not in the teacher's captions (binding_finetune.py --family placement)
    "placement": (
        "a photo of a circle on the left",
        {
            "other side (right)": "a photo of a circle on the right",
            "another side (top)": "a photo of a circle at the top",
            "side dropped": "a photo of a circle",
            "another shape (square)": "a photo of a square on the left",
            "a colour added (red)": "a photo of a red circle on the left",
            "empty prompt": "",
        },
    ),
}


def sensitivity(
    pipe, base: str, edits: dict[str, str], sigmas: list[float], n: int, drop_t5: bool, seed: int
) -> dict:
    """{edit: {sigma: relative change}} on `n` shared noisy latents per sigma."""
    cfg = pipe.transformer.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cfg.in_channels, cfg.sample_size, cfg.sample_size, generator=g)
    embeds = {k: pipe.encode_prompt([t], drop_t5=drop_t5).repeat(n) for k, t in edits.items()}
    base_embeds = pipe.encode_prompt([base], drop_t5=drop_t5).repeat(n)
    out: dict = {k: {} for k in edits}
    with torch.no_grad():
        for s in sigmas:
            v0 = pipe.velocity(x, s, base_embeds).float()
            for name in edits:
                v = pipe.velocity(x, s, embeds[name]).float()
                change = (v - v0).flatten(1).norm(dim=1) / v0.flatten(1).norm(dim=1)
                out[name][str(s)] = float(change.mean())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-teacher")
    p.add_argument("--set", default="relation", choices=tuple(SETS), dest="word_set")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.95, 0.8, 0.6])
    p.add_argument("--latents", type=int, default=8)
    p.add_argument("--no-t5", action="store_true", help="also drop the T5 slot (zeros)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", default=None, help="also write the result here (JSON)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import flashgen

    t0 = time.perf_counter()
    pipe = flashgen.load(args.model, dtype="fp32", decoder="full")
    base, edits = SETS[args.word_set]
    rows = sensitivity(pipe, base, edits, args.sigmas, args.latents, args.no_t5, args.seed)
    print(f"base: {base!r}; relative change of v at sigma " + " / ".join(map(str, args.sigmas)))
    for name, by_sigma in rows.items():
        print(f"  {name:26s} " + " / ".join(f"{by_sigma[str(s)]:.3f}" for s in args.sigmas))
    finish(
        {
            "bench": "word_sensitivity",
            "model": args.model,
            "set": args.word_set,
            "base": base,
            "edits": edits,
            "no_t5": args.no_t5,
            "latents": args.latents,
            "change": rows,
            "seconds": round(time.perf_counter() - t0, 1),
            **provenance(),
        },
        args.record,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
