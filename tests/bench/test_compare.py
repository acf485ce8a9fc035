"""bench compare on a tiny model: both pipelines run in their own processes, the record carries
latency, memory, FLOPs and the achieved fraction of the measured matmul peak, plus a plot."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flashgen.bench import energy
from flashgen.bench.compare import Variant
from flashgen.bench.energy import EnergyMeter, energy_record, rapl_domains
from flashgen.bench.flops import image_flops, measure_matmul_peak, transformer_step_flops
from flashgen.cli import main
from flashgen.models.tiny import build_taesd3_layout, build_tiny_sd35


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("c") / "tiny")


def test_compare_writes_json_and_plot(tiny, tmp_path, capsys):
    argv = [
        "bench",
        "compare",
        "--model",
        str(tiny),
        "--variants",
        "diffusers+fp32,flashgen+laptop,flashgen+tiny",
        "--decoder",
        str(build_taesd3_layout(tmp_path / "taesd3")),
    ]
    argv += ["--width", "64", "--height", "64", "--steps", "2", "--repeats", "1", "--warmup", "0"]
    argv += ["--threads", "1", "--name", "t", "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec == json.loads((tmp_path / "t.json").read_text()) | {"plot": rec["plot"]}
    assert (tmp_path / "t.png").stat().st_size > 1000
    for label in ("diffusers+fp32", "flashgen+laptop"):
        v = rec["variants"][label]
        assert "error" not in v, v
        assert v["median_wall_s"] > 0 and v["peak_rss_gib"] > 0.1
        assert v["transformer_calls_per_image"] == 2
        assert rec["achieved_transformer_tflops"][label] > 0
    tiny = rec["variants"]["flashgen+tiny"]
    assert "error" not in tiny and tiny["median_wall_s"] > 0 and tiny["spec"]["tiny"]
    assert rec["speedup_vs_first"]["diffusers+fp32"] == 1.0
    assert {p["dtype"] for p in rec["matmul_peak"]["peaks"]} == {"fp32", "bf16", "int8"}
    assert 0 < rec["fraction_of_peak"]["flashgen+laptop"]["fraction"]
    assert rec["fraction_of_peak"]["flashgen+laptop"]["vs"] == "int8"


def test_diffusers_loads_a_folder_without_t5(tmp_path):
    """A T5-less folder (model_index says [null, null]) loads in diffusers too: the session-9
    SD3.5-Medium comparison lost its diffusers baseline to this."""
    from flashgen.bench.compare import _load

    folder = build_tiny_sd35(tmp_path / "no_t5", with_t5=False)
    pipe, transformer = _load(Variant.parse("diffusers+fp32"), str(folder), "cpu")
    assert pipe.text_encoder_3 is None and transformer is pipe.transformer


def test_variant_specs_parse_and_refuse_unknown_options():
    v = Variant.parse("flashgen+bf16+laptop+no-t5")
    assert (v.impl, v.dtype, v.profile, v.drop_t5) == ("flashgen", "bf16", "laptop", True)
    assert v.label == "flashgen+bf16+laptop+no-t5"
    with pytest.raises(ValueError, match="unknown option"):
        Variant.parse("diffusers+laptop")
    tiny = Variant.parse("flashgen+laptop+tiny")
    assert tiny.tiny and tiny.label == "flashgen+laptop+tiny" and not v.tiny
    with pytest.raises(ValueError, match="unknown option"):
        Variant.parse("diffusers+tiny")  # a tiny decoder is a flashgen load option
    with pytest.raises(ValueError, match="flashgen or diffusers"):
        Variant.parse("comfy")


def test_flops_scale_with_tokens_and_cfg(tiny):
    a = transformer_step_flops(tiny, width=64, height=64)
    b = transformer_step_flops(tiny, width=128, height=128)
    assert b > a  # more image tokens, same 333 text tokens
    one = image_flops(tiny, width=64, height=64, steps=4, cfg=False, t5=True)
    two = image_flops(tiny, width=64, height=64, steps=4, cfg=True, t5=True)
    assert two.transformer_step == 2 * one.transformer_step
    assert one.total == 4 * one.transformer_step + one.text_encoders + one.vae_decode


def test_matmul_peak_is_a_positive_rate():
    r = measure_matmul_peak("fp32", size=256, repeats=2)
    assert r["tflops"] > 0 and r["best_s"] > 0


def test_energy_falls_back_to_compute_when_no_counter_is_readable(tmp_path, monkeypatch):
    assert rapl_domains(tmp_path) == []
    d = tmp_path / "intel-rapl:0"
    d.mkdir()
    (d / "energy_uj").write_text("1000\n")
    assert rapl_domains(tmp_path) == [d]
    # no readable counter on this machine, whatever it has: the record falls back to compute
    monkeypatch.setattr(energy, "rapl_domains", lambda root=None: [])
    with EnergyMeter("cpu") as m:
        pass
    assert m.joules is None and m.method == "none"
    rec = energy_record(m, 2, {"total_tflop": 1.0})
    assert rec["method"] == "flops" and rec["joules_per_image"] is None and rec["images"] == 2
    assert "seconds" not in rec
    assert rec["compute_per_image"] == {"total_tflop": 1.0}
    # and with a readable one (the fake domain): joules from the counter's difference
    monkeypatch.setattr(energy, "rapl_domains", lambda root=None: [d])
    with EnergyMeter("cpu") as m:
        (d / "energy_uj").write_text("3001000\n")
    assert m.method == "rapl" and m.joules == pytest.approx(3.0)
    rec = energy_record(m, 2, None)
    assert rec["method"] == "rapl" and rec["joules_per_image"] == pytest.approx(1.5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_its_parent(tmp_path):
    """A killed `bench compare` leaves no worker behind (workers hold the whole model)."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import subprocess, sys, pathlib\n"
                "from flashgen.bench.compare import die_with_parent\n"
                "c = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
                f"pathlib.Path({str(pid_file)!r}).write_text(str(c.pid))\n"
                "c.wait()\n"
            ),
        ]
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the parent never started its child"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "gone"
