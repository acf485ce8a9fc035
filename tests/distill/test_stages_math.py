import pytest
import torch

from flashgen.distill.split import branch_of, split_counts
from flashgen.distill.trajectory import teacher_grid, teacher_trajectory
from flashgen.sampling import make_sigmas, sample_euler


def test_teacher_grid_inserts_student_sigmas_into_teacher_schedule():
    student = torch.tensor([1.0, 0.5, 0.0])
    teacher = torch.tensor([1.0, 0.8, 0.6, 0.3, 0.0])
    grid = teacher_grid(student, teacher)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.8, 0.6, 0.5, 0.3, 0.0]))


def test_teacher_trajectory_records_the_teacher_ode_at_student_sigmas():
    def fn(x, s):  # a curved flow: the jump is not one Euler step
        return torch.sin(3 * x) + s

    student = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])
    grid = teacher_grid(student, make_sigmas(40, 3.0))
    noise = torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    traj = teacher_trajectory(fn, noise, student, grid)
    assert traj.shape == (5, 3, 2, 2, 2)
    torch.testing.assert_close(traj[0], noise)
    # each recorded point equals Euler integration over the grid up to that sigma
    for i, s in enumerate(student.tolist()):
        sub = grid[grid >= s - 1e-7]
        torch.testing.assert_close(traj[i], sample_euler(fn, noise, sub), atol=1e-5, rtol=1e-5)
    # a single student jump would not land there (the targets carry the teacher's curvature)
    one_jump = noise + (0.75 - 1.0) * fn(noise, torch.tensor(1.0))
    assert (one_jump - traj[1]).abs().max() > 1e-3


def test_teacher_trajectory_needs_student_sigmas_on_the_grid():
    with pytest.raises(ValueError):
        teacher_trajectory(
            lambda x, s: x,
            torch.zeros(1, 1),
            torch.tensor([1.0, 0.55, 0.0]),
            torch.tensor([1.0, 0.5, 0.0]),
        )


def test_split_ranges():
    assert branch_of(1.0, 0.5) == "high" and branch_of(0.75, 0.5) == "high"
    assert branch_of(0.5, 0.5) == "low" and branch_of(0.01, 0.5) == "low"
    with pytest.raises(ValueError):
        branch_of(0.0, 0.5)
    assert split_counts((1.0, 0.75, 0.5, 0.25), 0.5) == {"low": 2, "high": 2}
    assert split_counts((1.0, 0.5), 0.5) == {"low": 1, "high": 1}
    assert split_counts((1.0, 0.75), 0.5) == {"low": 0, "high": 2}
