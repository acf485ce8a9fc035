"""Timestep sharing vs re-noising on a problem with an exact teacher (runs in minutes on a CPU).

The Shapes ablation needs the trained teacher; this one needs none. Data: for each of 4
"prompts" c, a mixture of two tight 2-D Gaussians. The teacher is the EXACT rectified-flow
velocity of that data (posterior mean in closed form), so its ODE, its x0 prediction and the
data distribution are known. A 4-step MLP student is warmed up on the teacher's ODE (stage 1,
`teacher_trajectory` + `trajectory_guidance_loss`), then trained with DMD (stage 2) whose fake
score is an MLP fitted by `flow_matching_loss` (on the student's final samples, or on every
step's x0 estimate: `--fake-on`), the generator gradient `distribution_matching_loss` evaluated
at `shared_point` (timestep sharing) or `renoised_point` (standard DMD): the library's own
functions, with a 40-line loop in place of the SD3 task (no discriminator here).

Metric: sliced Wasserstein-2 distance between 4-step student samples and fresh data, averaged
over the prompts (lower is better), plus the share of samples within 3 std of a data mode
("precision") and the smaller mode's share relative to 0.5 ("coverage"). Mean ± sd over seeds.

    python benchmarks/toy_timestep_sharing.py --seeds 0 1 2 3 4 --fake-on final steps \
        --warmup-steps 300
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch
from torch import nn

from flashgen.bench.env import finish, provenance
from flashgen.distill.losses import (
    distribution_matching_loss,
    flow_matching_loss,
    trajectory_guidance_loss,
)
from flashgen.distill.points import noised_at, renoised_point, shared_point, student_steps
from flashgen.distill.trajectory import teacher_grid, teacher_trajectory
from flashgen.sampling import make_sigmas

K, STD = 4, 0.06
ANGLES = torch.arange(K) * (2 * math.pi / K)
MODES = torch.stack(  # prompt c: modes at radius 1 and 0.45, on the prompt's own direction
    [
        torch.stack([r * torch.stack([torch.cos(a), torch.sin(a)]) for r in (1.0, 0.45)])
        for a in ANGLES
    ]
)  # [K, 2 modes, 2]
SIGMAS = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])


def sample_data(c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    pick = torch.randint(0, 2, c.shape, generator=g)
    return MODES[c, pick] + STD * torch.randn(len(c), 2, generator=g)


def teacher_x0(x: torch.Tensor, s, c: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_s = x, c] for the two-Gaussian mixture of prompt c (closed form)."""
    s = torch.as_tensor(s, dtype=torch.float32).reshape(-1, 1).expand(len(x), 1)
    mu = MODES[c]  # [B, 2, 2]
    var = (1 - s) ** 2 * STD**2 + s**2  # [B, 1]
    d2 = ((x[:, None, :] - (1 - s)[:, None] * mu) ** 2).sum(-1)  # [B, 2]
    w = torch.softmax(-d2 / (2 * var), dim=1)  # equal priors
    gain = ((1 - s) * STD**2 / var)[:, None]  # [B, 1, 1]
    post = mu + gain * (x[:, None, :] - (1 - s)[:, None] * mu)
    return (w[..., None] * post).sum(1)


def teacher_v(x, s, c):
    s_t = torch.as_tensor(s, dtype=torch.float32).reshape(-1, 1).clamp_min(1e-4)
    return (x - teacher_x0(x, s, c)) / s_t


class MLP(nn.Module):
    """v(x, sigma, prompt): the student and the fake score."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(K, width)
        self.inp = nn.Linear(2 + 16, width)
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, 2),
        )

    def forward(self, x, s, c):
        s = torch.as_tensor(s, dtype=torch.float32).reshape(-1, 1).expand(len(x), 1)
        freqs = torch.arange(8, dtype=torch.float32)
        t = torch.cat([torch.sin(s * 2**freqs), torch.cos(s * 2**freqs)], dim=1)
        return self.body(self.inp(torch.cat([x, t], 1)) + self.embed(c))


def sliced_w2(a: torch.Tensor, b: torch.Tensor, g: torch.Generator, n_dirs: int = 64) -> float:
    dirs = torch.randn(n_dirs, 2, generator=g)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    pa, pb = (a @ dirs.T).sort(0).values, (b @ dirs.T).sort(0).values
    return float(((pa - pb) ** 2).mean().sqrt())


@torch.no_grad()
def evaluate(model, seed: int, n: int = 2000, sigmas: torch.Tensor = SIGMAS) -> dict:
    """Sample `model(x, sigma, c)` by Euler over `sigmas` and compare with the data."""
    g = torch.Generator().manual_seed(10_000 + seed)
    w2, prec, cov = [], [], []
    for c in range(K):
        cc = torch.full((n,), c)
        x = torch.randn(n, 2, generator=g)
        for st in student_steps(lambda x, s, cc=cc: model(x, s, cc), x, sigmas):
            x = st.x_next
        w2.append(sliced_w2(x, sample_data(cc, g), g))
        d = (x[:, None, :] - MODES[c][None]).norm(dim=-1)  # [n, 2]
        near = d.min(1).values < 3 * STD * math.sqrt(2)
        prec.append(float(near.float().mean()))
        share = (d.argmin(1)[near] == 0).float().mean() if near.any() else torch.tensor(0.0)
        cov.append(float(torch.minimum(share, 1 - share) / 0.5))
    return {"sw2": sum(w2) / K, "precision": sum(prec) / K, "coverage": sum(cov) / K}


def warmup(seed: int, steps: int, batch: int = 512) -> MLP:
    torch.manual_seed(seed)
    student = MLP()
    opt = torch.optim.AdamW(student.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    grid = teacher_grid(SIGMAS, make_sigmas(50, 1.0))
    for _ in range(steps):
        c = torch.randint(0, K, (batch,), generator=g)
        traj = teacher_trajectory(
            lambda x, s, c=c: teacher_v(x, s, c), torch.randn(batch, 2, generator=g), SIGMAS, grid
        )
        i = torch.randint(0, 4, (batch,), generator=g)
        rows = torch.arange(batch)
        v = student(traj[i, rows], SIGMAS[i], c)
        loss, _ = trajectory_guidance_loss(
            v, traj[i, rows], traj[i + 1, rows], SIGMAS[i], SIGMAS[i + 1]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student


def dmd(
    student: MLP,
    mode: str,
    seed: int,
    steps: int,
    batch: int = 256,
    fake_updates: int = 4,
    fake_on: str = "final",
    lr: float = 2e-4,
):
    """Stage 2 with `mode` points; the fake score fits the steps' x0 estimates ("steps") or
    only the student's final samples ("final"), noised at the sigmas it is queried at."""
    torch.manual_seed(1000 + seed)
    fake = MLP()
    g = torch.Generator().manual_seed(2000 + seed)
    opt_f = torch.optim.AdamW(fake.parameters(), lr=1e-3, betas=(0.0, 0.99))
    for _ in range(500):  # the fake score starts as a model of the data (as a teacher copy would)
        c = torch.randint(0, K, (batch,), generator=g)
        x0 = sample_data(c, g)
        p = noised_at(x0, torch.rand(batch, generator=g), g)
        loss, _ = flow_matching_loss(fake(p.x_t, p.sigma, c), x0, p.noise)
        opt_f.zero_grad()
        loss.backward()
        opt_f.step()
    opt_s = torch.optim.AdamW(student.parameters(), lr=lr, betas=(0.0, 0.99))
    point = (
        (lambda st: shared_point(st))
        if mode == "shared"
        else (lambda st: renoised_point(st.x0_pred, g, (0.02, 0.98)))
    )
    for _ in range(steps):
        for _ in range(fake_updates):
            c = torch.randint(0, K, (batch,), generator=g)
            with torch.no_grad():
                sts = list(
                    student_steps(
                        lambda x, s, c=c: student(x, s, c),
                        torch.randn(batch, 2, generator=g),
                        SIGMAS,
                    )
                )
                pts = [point(st) for st in sts]
            if fake_on == "steps":
                x0 = torch.cat([st.x0_pred for st in sts])
            else:
                x0 = sts[-1].x_next.repeat(len(sts), 1)
            p = noised_at(x0, torch.cat([q.sigma for q in pts]), g)
            loss, _ = flow_matching_loss(fake(p.x_t, p.sigma, c.repeat(4)), x0, p.noise)
            opt_f.zero_grad()
            loss.backward()
            opt_f.step()
        c = torch.randint(0, K, (batch,), generator=g)
        opt_s.zero_grad()
        for st in student_steps(
            lambda x, s, c=c: student(x, s, c), torch.randn(batch, 2, generator=g), SIGMAS
        ):
            q = point(st)
            x_t = q.x_t.detach()
            with torch.no_grad():
                x0_real = teacher_x0(x_t, q.sigma, c)
                x0_fake = x_t - q.sigma[:, None] * fake(x_t, q.sigma, c)
            loss, _ = distribution_matching_loss(st.x0_pred, x0_real, x0_fake)
            (loss / 4).backward()
        opt_s.step()
    return student


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--warmup-steps", type=int, default=1500)
    ap.add_argument("--dmd-steps", type=int, default=400)
    ap.add_argument("--dmd-lr", type=float, default=2e-4)
    ap.add_argument(
        "--fake-on",
        nargs="+",
        default=["final"],
        choices=("steps", "final"),
        help="what the fake score fits: the steps' x0 estimates or final samples",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    variants = [
        (f"DMD {m}, fake on {on}", m, on) for on in args.fake_on for m in ("shared", "renoise")
    ]
    rows = {"teacher, 50 Euler steps": [], "teacher, 4 Euler steps": [], "warm-up only": []}
    rows.update({label: [] for label, _, _ in variants})
    for seed in args.seeds:
        rows["teacher, 50 Euler steps"].append(
            evaluate(teacher_v, seed, sigmas=make_sigmas(50, 1.0))
        )
        rows["teacher, 4 Euler steps"].append(evaluate(teacher_v, seed))
        base = warmup(seed, args.warmup_steps)
        state = {k: v.clone() for k, v in base.state_dict().items()}
        rows["warm-up only"].append(evaluate(base, seed))
        for label, mode, on in variants:
            student = MLP()
            student.load_state_dict(state)
            trained = dmd(student, mode, seed, args.dmd_steps, fake_on=on, lr=args.dmd_lr)
            rows[label].append(evaluate(trained, seed))
        print(f"seed {seed}: " + json.dumps({k: v[-1] for k, v in rows.items()}), file=sys.stderr)

    def fmt(vals):
        m = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - m) ** 2 for v in vals) / max(1, len(vals) - 1))
        return f"{m:.4f} ± {sd:.4f}"

    print(
        f"| student (4 steps), {len(args.seeds)} seeds | sliced W2 (lower better) | "
        "precision | coverage |\n|---|---|---|---|"
    )
    for label, rs in rows.items():
        print(
            f"| {label} | {fmt([r['sw2'] for r in rs])} | "
            f"{fmt([r['precision'] for r in rs])} | {fmt([r['coverage'] for r in rs])} |"
        )
    finish({"bench": "toy_timestep_sharing", **rows, **provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
