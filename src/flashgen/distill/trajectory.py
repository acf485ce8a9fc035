"""The teacher's ODE over the student's intervals: the targets of trajectory guidance.

`teacher_grid` inserts the student's sigmas into the teacher's own schedule; `teacher_trajectory`
Euler-integrates the teacher (any model_fn, CFG included) over that grid and records x at every
student sigma. Stage 1 regresses the student's jumps onto these points; stages 2 and 3 reuse them
as an anchor (see dmd.py).
"""

from __future__ import annotations

import torch

from flashgen.sampling.samplers import ModelFn


def teacher_grid(student_sigmas: torch.Tensor, teacher_sigmas: torch.Tensor) -> torch.Tensor:
    """The teacher's schedule with the student's sigmas inserted (descending, no duplicates), so
    every student interval is integrated on the teacher's own discretisation."""
    grid = torch.cat([student_sigmas.float(), teacher_sigmas.float()]).unique(sorted=True)
    return grid.flip(0)


@torch.no_grad()
def teacher_trajectory(
    model_fn: ModelFn, noise: torch.Tensor, student_sigmas: torch.Tensor, grid: torch.Tensor
) -> torch.Tensor:
    """Euler-integrate the teacher over `grid` from `noise`; return x at each student sigma,
    stacked [len(student_sigmas), B, ...] (x at student_sigmas[0] is the noise itself)."""
    keep = {round(float(s), 6) for s in student_sigmas}
    if round(float(grid[0]), 6) != round(float(student_sigmas[0]), 6):
        raise ValueError("the teacher grid must start at the student's first sigma")
    x = noise.float()
    out = [x]
    for i in range(len(grid) - 1):
        s, s_next = grid[i], grid[i + 1]
        x = x + (s_next - s) * model_fn(x, s).float()
        if round(float(s_next), 6) in keep:
            out.append(x)
    if len(out) != len(student_sigmas):
        raise ValueError("every student sigma must lie on the teacher grid (use teacher_grid)")
    return torch.stack(out)
