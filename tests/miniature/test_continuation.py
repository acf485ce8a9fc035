"""Continuing the shipped teacher (`continue_from`): a few steps at toy batch on the CPU."""

import filecmp
import json

import benchmark_script
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from flashgen.miniature.components import TransformerConfig, build_transformer
from flashgen.miniature.continuation import (
    load_transformer_weights,
    resolve_source,
    teacher_runs,
)
from flashgen.miniature.presets import preset, with_overrides
from flashgen.miniature.recipe import train_miniature
from flashgen.models.modelcard import read_card
from flashgen.models.registry import builtin_path

SOURCE = "shapes-teacher"
REUSED = ("vae", "text_encoder", "text_encoder_2")
SHIPPED_DIT = [  # the shipped teacher's architecture (the cpu-smoke preset's is smaller)
    "teacher.transformer.num_layers=5",
    "teacher.transformer.num_heads=3",
    "teacher.transformer.head_dim=64",
    "teacher.transformer.dual_attention_layers=[0, 1]",
]


TOY_RUN = [  # a continuation of the shipped teacher at toy size: 2 steps at batch 4
    *SHIPPED_DIT,
    "n_images=64",
    "teacher.n_images=64",
    "teacher.batch_size=4",
    "teacher_budget.steps=2",
    "teacher.eval_every=0",
    "teacher.select_steps=2",
    "teacher.select_prompts=3",
    "teacher.select_guidances=[4.0]",
]


def _continue_cfg(**more):
    items = [
        f"continue_from={SOURCE!r}",
        *TOY_RUN,
        # an LR far below fp16's resolution: the exported EMA must be the source's weights
        "teacher.lr=1e-10",
    ]
    return with_overrides(preset("cpu-smoke"), items + [f"{k}={v}" for k, v in more.items()])


@pytest.fixture(scope="module")
def continued(tmp_path_factory):
    out = tmp_path_factory.mktemp("continue")
    said = []
    model = train_miniature(_continue_cfg(), out, device="cpu", say=said.append)
    return out, model, said


def test_loaded_transformer_is_the_source_transformer():
    folder = builtin_path(SOURCE) / "transformer"
    model = build_transformer(TransformerConfig(), 96)
    load_transformer_weights(model, folder)
    saved = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    state = model.state_dict()
    assert saved.keys() <= state.keys()
    for k, v in saved.items():
        assert torch.equal(state[k], v.float()), k


def test_continued_run_starts_from_the_source_and_skips_vae_and_clip(continued):
    out, model, said = continued
    assert any(f"continuing {SOURCE}" in s for s in said)
    assert not (out / "vae").exists() and not (out / "clip").exists()
    ours = load_file(str(model / "transformer" / "diffusion_pytorch_model.safetensors"))
    source = load_file(
        str(builtin_path(SOURCE) / "transformer" / "diffusion_pytorch_model.safetensors")
    )
    assert ours.keys() == source.keys()
    assert all(torch.equal(ours[k], source[k]) for k in source)


def test_the_ema_keeps_the_loaded_weights_without_a_warm_up_ramp(continued):
    # the ramp (decay (1+n)/(10+n)) would swap the source's averaged weights for the first
    # noisy steps of the fresh optimizer: a CPU continuation with it lost 0.09 validation
    out, _, _ = continued
    ckpt = max((out / "teacher" / "checkpoints").glob("step_*"))
    ema = json.loads((ckpt / "ema.json").read_text())
    assert ema["warmup"] is False and ema["num_updates"] == 2


def test_reused_parts_are_the_source_files(continued):
    _, model, _ = continued
    src = builtin_path(SOURCE)
    for sub in REUSED:
        names = sorted(p.name for p in (src / sub).iterdir())
        assert sorted(p.name for p in (model / sub).iterdir()) == names
        same, _, _ = filecmp.cmpfiles(src / sub, model / sub, names, shallow=False)
        assert same == names, sub
    ours, theirs = read_card(model).external_components, read_card(src).external_components
    for slot in ("tokenizer", "tokenizer_2", "text_encoder_3", "tokenizer_3"):
        assert ours[slot] == theirs[slot]
    # the VAE is the same, so its tiny decoder is carried over (byte for byte)
    assert read_card(model).tiny_decoder == read_card(src).tiny_decoder == "tiny_vae"
    assert read_card(model).default_decoder == read_card(src).default_decoder == "tiny"
    names = sorted(p.name for p in (src / "tiny_vae").iterdir())
    same, _, _ = filecmp.cmpfiles(src / "tiny_vae", model / "tiny_vae", names, shallow=False)
    assert same == names


def test_continued_model_loads_and_generates(continued):
    import flashgen
    from flashgen.request import GenerationRequest

    _, model, _ = continued
    for decoder in ("full", "tiny"):
        pipe = flashgen.load(str(model), device="cpu", decoder=decoder)
        image = pipe.generate(GenerationRequest("a photo of a red circle", seed=0)).images[0]
        assert np.asarray(image).shape == (64, 64, 3)


def test_training_json_records_the_lineage(continued):
    out, model, _ = continued
    record = json.loads((model / "training.json").read_text())
    source = json.loads((builtin_path(SOURCE) / "training.json").read_text())
    assert record["continued_from"]["model"] == SOURCE
    assert record["continued_from"]["training"] == source
    assert [s["name"] for s in record["stages"]] == ["teacher"]
    assert record["parameters"] == source["parameters"]
    assert record["precision"] == "no"  # "auto", resolved: the suite pins FLASHGEN_CPU_BF16=0
    # the shipped teacher may itself be a continuation: its runs come first, ours last
    *earlier, ours = record["teacher_runs"]
    assert earlier == teacher_runs(source) and earlier[0]["batch_size"] == 512
    assert earlier[-1]["steps"] == source["stages"][-1]["steps"]
    assert ours["steps"] == 2 and ours["batch_size"] == 4
    totals = record["teacher_totals"]
    assert totals["runs"] == len(earlier) + 1
    assert totals["steps"] == sum(r["steps"] for r in earlier) + 2
    assert totals["samples"] == sum(r["samples"] for r in earlier) + 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["continued_from"] == SOURCE and set(summary["stages"]) == {"teacher"}
    assert summary["clip"] == _first_report(source, "clip") != {}


ema_snapshot = benchmark_script.load("ema_snapshot")


def test_an_ema_snapshot_records_the_run_so_far_and_can_be_continued(continued, tmp_path):
    # the one-session segments (teacher-continuation-cpu/s20-command.sh) are chained through
    # snapshots committed to the repository: their lineage must stay whole
    out, _, _ = continued
    ckpt = max((out / "teacher" / "checkpoints").glob("step_*"))
    snap = tmp_path / "snap"
    argv = ["--checkpoint", str(ckpt), "--like", SOURCE, "--out", str(snap)]
    assert ema_snapshot.main(argv) == 0
    record = json.loads((snap / "training.json").read_text())
    source = json.loads((builtin_path(SOURCE) / "training.json").read_text())
    assert record["continued_from"]["model"] == SOURCE
    assert record["continued_from"]["training"] == source
    assert record["config"] == (out / "config.toml").read_text()
    (stage,) = record["stages"]
    assert (
        stage["stopped"] == "snapshot"
        and stage["steps"] == json.loads((ckpt / "meta.json").read_text())["step"]
    )
    *earlier, ours = record["teacher_runs"]
    assert earlier == teacher_runs(source) and ours["batch_size"] == 4
    assert record["teacher_totals"]["steps"] == sum(r["steps"] for r in earlier) + stage["steps"]
    # a snapshot is a continue_from source in turn, carrying this record
    assert resolve_source(str(snap), _continue_cfg().teacher.transformer).training == record
    # a --like that is not what the run continued is refused before anything is written
    wrong = tmp_path / "wrong"
    with pytest.raises(SystemExit, match="continued 'shapes-teacher'"):
        ema_snapshot.main(["--checkpoint", str(ckpt), "--like", str(snap), "--out", str(wrong)])
    assert not wrong.exists() and not wrong.with_name("wrong.partial").exists()


def test_a_snapshot_of_the_raw_weights_takes_the_trained_model_not_the_ema(continued, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    out, _, _ = continued
    ckpt = tmp_path / "ckpt"  # a copy whose raw weights are marked, so the two sources differ
    shutil.copytree(max((out / "teacher" / "checkpoints").glob("step_*")), ckpt)
    raw = load_file(str(ckpt / "model.safetensors"))
    name = "context_embedder.weight"
    raw[name] = raw[name] + 0.5
    save_file(raw, str(ckpt / "model.safetensors"))
    shadow = ema_snapshot.load_state(ckpt / "ema")["shadow"]
    for weights, source in (("ema", shadow), ("model", raw)):
        snap = tmp_path / weights
        argv = ["--checkpoint", str(ckpt), "--like", SOURCE, "--out", str(snap)]
        assert ema_snapshot.main([*argv, "--weights", weights]) == 0
        assert json.loads((snap / "snapshot.json").read_text())["weights"] == weights
        got = load_file(str(snap / ema_snapshot.WEIGHTS))[name]
        torch.testing.assert_close(got, source[name].to(got.dtype))


def _first_report(record: dict, name: str) -> dict:
    """The report of stage `name` in `record`, or in the record it was continued from."""
    while record:
        for stage in record.get("stages", []):
            if stage["name"] == name:
                return stage["report"]
        record = record.get("continued_from", {}).get("training", {})
    return {}


def test_refuses_a_mismatching_transformer_config(tmp_path):
    cfg = with_overrides(preset("cpu-smoke"), [f"continue_from={SOURCE!r}"])  # 2 layers
    with pytest.raises(ValueError, match=r"teacher.transformer does not match.*num_layers 2 != 5"):
        train_miniature(cfg, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="is a student"):
        train_miniature(
            _continue_cfg(continue_from='"shapes-flash-4step"'), tmp_path / "s", device="cpu"
        )
