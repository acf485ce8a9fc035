"""SD3.5-Flash distillation: a multi-step SD3-family teacher -> a few-step guidance-free student.

Entry points: `flashgen.distill.recipe.distill(cfg)` runs every stage of one config;
`flashgen.distill.config` (load_distill_config, preset_configs) builds configs; the CLI is
`flashgen distill`. Pure maths: `losses` (named losses), `points` (the student's path and the
points scores are compared at), `merge`. Roles: `roles`. Stages: `warmup`, `dmd`, `split`.
See docs/distillation.md. (No imports here: a submodule import stays light.)
"""
