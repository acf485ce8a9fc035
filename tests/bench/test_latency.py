import json

import pytest

from flashgen.bench.latency import LatencyConfig, median_timings
from flashgen.cli import main
from flashgen.models.tiny import build_tiny_sd35


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("tiny") / "tiny", with_t5=False)


def test_bench_prints_one_json_record_last(tiny_model, capsys, tmp_path):
    out = tmp_path / "r.json"
    argv = ["bench", "--model", str(tiny_model), "--width", "64", "--height", "64"]
    rc = main([*argv, "--steps", "2", "--repeats", "2", "--threads", "1", "--out", str(out)])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    rec = json.loads(last)
    assert rec == json.loads(out.read_text())
    assert rec["bench"] == "latency" and rec["device"] == "cpu" and rec["dtype"] == "fp32"
    hw = rec["device_info"]  # what decides the CPU's default dtype is on record
    assert isinstance(hw["cpu_amx"], bool) and hw["cpu_fast_bf16"] is False  # pinned in conftest
    assert hw["cpu_auto_dtype"] == "fp32"
    assert isinstance(hw["cpu_avx512_bf16"], bool)
    speedup = hw["cpu_bf16_speedup"]  # measured where only the probe could decide
    assert (speedup is not None) == (hw["cpu_avx512_bf16"] and not hw["cpu_amx"])
    assert speedup is None or speedup > 0
    assert rec["versions"]["torch"] and rec["versions"]["diffusers"]
    assert rec["settings"]["steps"] == 2 and rec["settings"]["width"] == 64
    assert len(rec["runs"]) == 2
    for stage in ("encode", "denoise", "decode", "total", "wall"):
        assert rec["median_s"][stage] > 0
    assert rec["median_s"]["wall"] >= rec["median_s"]["denoise"]
    assert 0 < rec["rss_after_load_gib"] <= rec["peak_rss_gib"]
    assert "git_commit" in rec


def test_run_verb_is_the_same_benchmark(tiny_model, capsys):
    argv = ["bench", "run", "--model", str(tiny_model), "--width", "64", "--height", "64"]
    assert main([*argv, "--steps", "1", "--repeats", "1", "--warmup", "0"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["settings"]["steps"] == 1 and len(rec["runs"]) == 1


def test_median_timings_uses_keys_common_to_all_runs():
    runs = [{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0, "b": 1.0}]
    assert median_timings(runs) == {"a": 2.0}


def test_bad_repeats_is_a_usage_error(capsys):
    with pytest.raises(ValueError, match="repeats"):
        LatencyConfig(repeats=0)
    assert main(["bench", "--repeats", "0", "--model", "x"]) == 2
    assert "repeats" in capsys.readouterr().err
