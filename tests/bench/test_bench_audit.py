"""Audit of the benchmark records: what a GPU worker of `bench compare` reports as peak memory."""

import torch
from torch import nn

from flashgen.bench import compare, env


class _Pipe:
    dtype = torch.float32


def test_a_cuda_worker_reports_gpu_peak_memory(monkeypatch):
    # peak RSS says nothing about GPU memory: a CUDA variant must carry the allocator's peak
    monkeypatch.setattr(compare, "_load", lambda *a, **k: (_Pipe(), nn.Linear(2, 2)))
    monkeypatch.setattr(compare, "_generate", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 3 * env.GIB)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a, **k: 4 * env.GIB)
    cfg = {"model": "m", "device": "cuda", "warmup": 1, "repeats": 2}
    rec = compare.run_worker("flashgen", cfg)
    assert rec["device"] == "cuda" and len(rec["wall_s"]) == 2
    assert rec["cuda_peak_allocated_gib"] == 3.0 and rec["cuda_peak_reserved_gib"] == 4.0


def test_a_cpu_worker_has_no_gpu_memory_keys(monkeypatch):
    monkeypatch.setattr(compare, "_load", lambda *a, **k: (_Pipe(), nn.Linear(2, 2)))
    monkeypatch.setattr(compare, "_generate", lambda *a, **k: None)
    rec = compare.run_worker("flashgen", {"model": "m", "device": "cpu", "warmup": 0, "repeats": 1})
    assert not any(k.startswith("cuda_") for k in rec) and rec["peak_rss_gib"] > 0


def test_a_workers_energy_is_also_given_per_image(monkeypatch):
    from flashgen.bench import energy

    class Meter:
        method, joules = "rapl", 12.0

        def __init__(self, device):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(compare, "_load", lambda *a, **k: (_Pipe(), nn.Linear(2, 2)))
    monkeypatch.setattr(compare, "_generate", lambda *a, **k: None)
    monkeypatch.setattr(energy, "EnergyMeter", Meter)
    rec = compare.run_worker("flashgen", {"model": "m", "device": "cpu", "warmup": 0, "repeats": 3})
    assert rec["energy_joules"] == 12.0 and rec["energy_joules_per_image"] == 4.0


def _with_card_t5(folder, length: int):
    from flashgen.models.modelcard import ModelCard

    ModelCard.from_dict({"t5_max_length": length}, fallback_name=folder.name).write(folder)
    return folder


def test_flops_count_the_models_own_text_lengths(tmp_path):
    # a model padding T5 to 8 tokens (a card, like the Shapes models' 32) runs a shorter
    # transformer context than SD3.5's 77 + 256: its FLOPs must count what it runs
    from flashgen.bench.flops import image_flops, text_lengths, transformer_step_flops
    from flashgen.models.tiny import build_tiny_sd35

    folder = build_tiny_sd35(tmp_path / "tiny")
    clip, t5 = text_lengths(folder)
    assert t5 == 256  # no card: diffusers' default
    default = transformer_step_flops(folder, width=64, height=64)
    assert default == transformer_step_flops(folder, width=64, height=64, t5_len=256)
    _with_card_t5(folder, 8)
    assert text_lengths(folder) == (clip, 8)
    short = transformer_step_flops(folder, width=64, height=64)
    assert short == transformer_step_flops(folder, width=64, height=64, t5_len=8) < default
    img = image_flops(folder, width=64, height=64, steps=2, cfg=False, t5=True)
    assert img.transformer_step == short


def test_compare_runs_diffusers_at_the_cards_t5_length(tmp_path):
    # both pipelines of `bench compare` must encode prompts to the same length, or the
    # diffusers baseline runs a longer context (256 T5 tokens) than flashgen (the card's)
    from flashgen.bench.compare import Variant, _generate, _load
    from flashgen.models.tiny import build_tiny_sd35

    folder = _with_card_t5(build_tiny_sd35(tmp_path / "tiny"), 8)
    pipe, _ = _load(Variant.parse("diffusers+fp32"), str(folder), "cpu")
    shapes = []
    encode = pipe.encode_prompt

    def recording(*args, **kwargs):
        out = encode(*args, **kwargs)
        shapes.append(tuple(out[0].shape))
        return out

    pipe.encode_prompt = recording
    cfg = {"model": str(folder), "steps": 1, "guidance": 1.0, "seed": 0, "width": 64, "height": 64}
    _generate(Variant.parse("diffusers+fp32"), pipe, cfg, "a red circle")
    clip = pipe.tokenizer.model_max_length
    assert shapes and shapes[0][1] == clip + 8


def test_peak_and_make_model_lines_carry_device_versions_and_commit(tmp_path, capsys, monkeypatch):
    # every bench prints one JSON line last with the device, the versions and the commit
    # (make-model's real architectures are gigabytes: its writer is replaced, its record is not)
    import json

    from flashgen.bench import make_model
    from flashgen.cli import main

    assert main(["bench", "peak", "--size", "16", "--threads", "1"]) == 0
    peak = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    monkeypatch.setattr(make_model, "make_model", lambda cfg: {"arch": cfg.arch})
    out = tmp_path / "m"
    assert main(["bench", "make-model", "--arch", "sd3.5-medium", "--out", str(out)]) == 0
    made = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert made["arch"] == "sd3.5-medium"
    for rec in (peak, made):
        assert rec["device_info"]["device"] == "cpu" and rec["device_info"]["cpu_count"] >= 1
        assert rec["versions"]["torch"] == torch.__version__
        assert rec["git_commit"] == env.git_commit()


# scripts whose last JSON line takes its provenance from elsewhere, with the reason
_OWN_PROVENANCE = {
    "paired.py": "a shim for `flashgen eval compare`, whose summary line carries it",
    "clip_vs_geneval.py": "copies device, versions and commit from the eval run it reads",
    "shapes_render_speed.py": "no torch: processor, Python, numpy and commit of its own",
    "ema_snapshot.py": "a tool: the snapshot's record keeps its training run's provenance",
}


def test_every_benchmark_script_ends_with_device_versions_and_commit():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "benchmarks"
    missing = [
        p.name
        for p in sorted(root.glob("*.py"))
        if p.name not in _OWN_PROVENANCE
        and not any(call in p.read_text() for call in ("provenance()", "git_commit()"))
    ]
    assert missing == [], f"benchmarks without device, versions and commit: {missing}"
