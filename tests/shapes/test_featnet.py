import runpy
import sys
from pathlib import Path

import numpy as np
import torch

from flashgen.shapes.featnet import (
    FEATURE_DIM,
    GRID,
    N_COUNTS,
    N_TARGETS,
    FeatNet,
    scene_targets,
    split_targets,
)
from flashgen.shapes.render import ObjectSpec, Scene
from flashgen.shapes.world import COLORS, SHAPES

ROOT = Path(__file__).resolve().parents[2]


def test_scene_targets_counts_and_occupancy():
    scene = Scene(
        (
            ObjectSpec("circle", "red", 2, 2, 10),  # centroid ~(6.5, 6.5): cell (0, 0)
            ObjectSpec("circle", "red", 40, 2, 10),  # ~(44.5, 6.5): cell (row 0, col 2)
            ObjectSpec("triangle", "cyan", 40, 40, 18),  # ~(48.5, 51.5): cell (3, 3)
        )
    )
    t = scene_targets(scene)
    assert t.shape == (N_TARGETS,)
    counts = t[:N_COUNTS].reshape(len(COLORS), len(SHAPES))
    assert counts[0, 0] == 2 and counts[5, 2] == 1 and counts.sum() == 3
    shape_grid = t[N_COUNTS : N_COUNTS + len(SHAPES) * GRID * GRID].reshape(len(SHAPES), GRID, GRID)
    assert shape_grid[0, 0, 0] == 1 and shape_grid[0, 0, 2] == 1 and shape_grid[2, 3, 3] == 1
    assert shape_grid.sum() == 3


def test_featnet_shapes():
    net = FeatNet().eval()
    x = torch.zeros(2, 3, 64, 64)
    assert net.features(x).shape == (2, FEATURE_DIM)
    counts, occ = split_targets(net(x))
    assert counts.shape == (2, N_COUNTS) and occ.shape == (2, N_TARGETS - N_COUNTS)


def test_train_script_runs_and_writes_loadable_fp16(tmp_path, monkeypatch, capsys):
    out = tmp_path / "f.safetensors"
    argv = ["train_featnet.py", "--steps", "2", "--batch-size", "8", "--eval-size", "16"]
    argv += ["--threads", str(torch.get_num_threads()), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "scripts/train_featnet.py"), run_name="__main__")
    assert '"val_counts_exact"' in capsys.readouterr().out.strip().splitlines()[-1]
    from safetensors.torch import load_file

    state = load_file(str(out))
    assert all(v.dtype == torch.float16 for v in state.values())
    FeatNet().load_state_dict({k: v.float() for k, v in state.items()})
    assert out.stat().st_size < 2_000_000
    assert np.isfinite([v.float().sum().item() for v in state.values()]).all()
