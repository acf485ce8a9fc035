"""A toy-sized teacher stage as a script, for `accelerate launch` (tests/miniature/test_teacher_fsdp.py).

python teacher_run.py STAGES_DIR OUT_DIR [--resume]
"""

import sys
from pathlib import Path

import torch

from flashgen.miniature.components import TransformerConfig
from flashgen.miniature.data import render_set
from flashgen.miniature.teacher_task import TeacherTask, TeacherTaskConfig
from flashgen.train import TrainRunConfig, run

STEPS = 6


def main() -> None:
    torch.set_num_threads(1)
    stages, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = TeacherTaskConfig(
        transformer=TransformerConfig(
            num_layers=2, num_heads=2, head_dim=32, dual_attention_layers=(0,)
        ),
        vae_dir=str(stages / "vae" / "export" / "vae"),
        clip_dir=str(stages / "clip" / "export"),
        batch_size=8,
        lr=2e-3,
        warmup_steps=2,
        eval_every=3,
        eval_prompts=3,
        eval_steps=1,
        select_steps=1,
        select_prompts=3,
        select_shifts=(3.0,),
        select_guidances=(1.0, 3.0),
        text_batch=64,
    )
    run_cfg = TrainRunConfig(
        max_steps=STEPS,
        out_dir=str(out),
        device="cpu",
        mixed_precision="no",
        log_every=1,
        ckpt_every=3,
        eval_every=3,
    )
    task = TeacherTask(cfg, render_set(96, seed=0, workers=1))
    run(task, run_cfg, resume="--resume" in sys.argv)


if __name__ == "__main__":
    main()
