"""A command run under a multi-process launch closes its process group before exiting: left to
interpreter exit, gloo's threads sometimes aborted a rank (SIGABRT) after a successful run."""

import torch.distributed as dist

from flashgen.cli import main


def test_a_command_closes_the_process_group_it_ran_in(tmp_path, capsys):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        assert main(["models"]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_a_failing_command_closes_it_too(tmp_path, capsys):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert main(["generate", "x", "--model", str(tmp_path / "missing")]) == 2
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
