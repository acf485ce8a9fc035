"""Benchmark CLI fixes: options before a verb, `peak` input checks, `compare` model and variants
resolved up front, the dtype a variant really ran in, failing early on a bad FLASHGEN_CPU_BF16
or --out, and the git commit of an installed copy."""

import json
import shutil
import subprocess
from dataclasses import asdict

import pytest
import torch

import flashgen
from flashgen.bench import compare, env
from flashgen.cli import build_parser, main
from flashgen.cli.bench import emit
from flashgen.devices import CPU_BF16_ENV, cpu_fast_bf16
from flashgen.errors import UsageError
from flashgen.models.tiny import build_tiny_sd35


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd35(tmp_path_factory.mktemp("fix") / "tiny", with_t5=False)


def _never(*_, **__):
    raise AssertionError("the benchmark started despite a bad input")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flashgen: error:"), err
    return err[0]


# -- 1. options before the verb -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--model", "tiny-random", "--repeats", "5", "--drop-t5", "run"],
        ["bench", "run", "--model", "tiny-random", "--repeats", "5", "--drop-t5"],
        ["bench", "--model", "tiny-random", "run", "--repeats", "5", "--drop-t5"],
    ],
)
def test_run_options_count_before_or_after_the_verb(argv):
    args = build_parser().parse_args(argv)
    assert (args.model, args.repeats, args.drop_t5) == ("tiny-random", 5, True)
    assert args.width == 512 and args.warmup == 1  # bench's defaults still apply


def test_after_the_verb_wins_and_defaults_match_without_a_verb():
    parser = build_parser()
    assert parser.parse_args(["bench", "--repeats", "5", "run", "--repeats", "7"]).repeats == 7
    plain, run = parser.parse_args(["bench"]), parser.parse_args(["bench", "run"])
    assert {k: v for k, v in vars(plain).items() if k != "bench_verb"} == {
        k: v for k, v in vars(run).items() if k != "bench_verb"
    }


def test_a_bench_option_before_another_verb_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--threads", "1", "peak"])
    assert e.value.code == 2
    assert "--threads before 'peak'" in _one_error_line(capsys)
    assert build_parser().parse_args(["bench", "peak", "--threads", "1"]).threads == 1


# -- 2. peak -------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--device", "xyz"], ["--device", "mps"], ["--size", "0"]])
def test_peak_refuses_bad_input_in_one_line(argv, capsys, monkeypatch):
    if argv[-1] == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    monkeypatch.setattr("flashgen.bench.flops.measure_matmul_peak", _never)
    assert main(["bench", "peak", *argv]) == 2
    _one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_peak_on_cuda_without_a_gpu_is_one_line(capsys):
    assert main(["bench", "peak", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in _one_error_line(capsys)


# -- 3, 4, 5. compare ------------------------------------------------------------------------


def test_empty_variants_are_a_usage_error(capsys):
    with pytest.raises(ValueError, match="variants"):
        compare.CompareConfig(model="x", variants=())
    assert main(["bench", "compare", "--model", "x", "--variants", ","]) == 2
    _one_error_line(capsys)


def test_compare_refuses_a_missing_model_before_any_worker(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare, "_spawn", _never)
    argv = ["bench", "compare", "--model", str(tmp_path / "nope"), "--variants", "flashgen"]
    assert main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    assert "not found" in _one_error_line(capsys)
    assert not (tmp_path / "res").exists()


def _fake_worker(spec: str, dtype: str) -> dict:
    return {
        "variant": compare.Variant.parse(spec).label,
        "spec": asdict(compare.Variant.parse(spec)),
        "device": "cpu",
        "dtype": dtype,
        "median_wall_s": 2.0,
        "median_cpu_s": 2.0,
        "median_transformer_s": 1.0,
        "median_transformer_cpu_s": 1.0,
        "peak_rss_gib": 1.0,
    }


def test_compare_of_a_builtin_name_counts_flops_on_its_folder(tmp_path, monkeypatch, capsys):
    """`--model tiny-random` used to fail at the FLOP count after every worker ran; and a
    flashgen variant running bf16 (the default on AMX CPUs) was set against the fp32 peak."""
    monkeypatch.setenv("FLASHGEN_CACHE", str(tmp_path / "cache"))
    seen = []

    def spawn(args, timeout):
        if args[0] == "--peak":
            peaks = [{"dtype": "fp32", "tflops": 1.0}, {"dtype": "bf16", "tflops": 4.0}]
            return {"device": "cpu", "peaks": peaks}
        seen.append(json.loads(args[2])["model"])
        return _fake_worker(args[1], "bf16")

    monkeypatch.setattr(compare, "_spawn", spawn)
    argv = ["bench", "compare", "--model", "tiny-random", "--variants", "flashgen"]
    argv += ["--width", "64", "--height", "64", "--results-dir", str(tmp_path / "res")]
    assert main(argv) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = tmp_path / "cache" / "builtin" / "tiny-random"
    assert seen == [str(folder)] and rec["model_path"] == str(folder)
    assert rec["flops_per_image"]["flashgen"]["transformer_step_tflop"] > 0
    frac = rec["fraction_of_peak"]["flashgen"]
    assert frac["vs"] == "bf16"
    assert frac["fraction"] == pytest.approx(rec["achieved_transformer_tflops"]["flashgen"] / 4.0)


def test_a_worker_records_the_dtype_it_ran_in(tiny, monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")  # an AMX CPU's default: bf16 with no +dtype given
    cfg = {"model": str(tiny), "width": 64, "height": 64, "steps": 1, "guidance": 1.0}
    cfg |= {"repeats": 1, "warmup": 0, "seed": 0, "threads": 1, "device": "cpu"}
    assert compare.run_worker("flashgen", cfg)["dtype"] == "bf16"
    assert compare.run_worker("flashgen+fp32", cfg)["dtype"] == "fp32"


# -- 6. fail before the benchmark, keep the results -------------------------------------------


def test_the_env_error_lists_every_accepted_value(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "yes-please")
    with pytest.raises(UsageError, match="1, true, yes, on .*0, false, no, off.*auto"):
        cpu_fast_bf16()


def test_device_info_records_a_bad_env_value_instead_of_raising(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "yes-please")
    info = env.device_info("cpu")
    assert info["cpu_bf16_env"] == "yes-please"
    assert info["cpu_fast_bf16"] is None and info["cpu_auto_dtype"] is None


@pytest.mark.parametrize(
    "verb",
    [
        ["run", "--dtype", "fp32"],  # an explicit dtype never reads the variable while loading
        ["compare", "--variants", "flashgen+fp32"],
        ["peak", "--size", "16"],
    ],
)
def test_a_bad_env_value_stops_every_bench_before_it_starts(verb, tiny, monkeypatch, capsys):
    monkeypatch.setenv(CPU_BF16_ENV, "yes-please")
    monkeypatch.setattr(flashgen, "load", _never)
    monkeypatch.setattr(compare, "_spawn", _never)
    monkeypatch.setattr("flashgen.bench.flops.measure_matmul_peak", _never)
    model = ["--model", str(tiny)] if verb[0] != "peak" else []
    assert main(["bench", *verb, *model]) == 2
    assert CPU_BF16_ENV in _one_error_line(capsys)


def test_an_unwritable_out_stops_the_bench_before_it_starts(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(flashgen, "load", _never)
    assert main(["bench", "--model", str(tiny), "--out", str(tmp_path)]) == 2  # a folder
    assert str(tmp_path) in _one_error_line(capsys)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "--model", str(tiny), "--out", str(blocker / "r.json")]) == 2
    _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == [blocker]


def test_emit_prints_the_record_before_writing_the_file(tmp_path, capsys):
    with pytest.raises(OSError):
        emit({"bench": "x", "v": 1}, str(tmp_path))  # a folder: the write fails
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"bench": "x", "v": 1}


# -- 7. git commit -------------------------------------------------------------------------------


def _git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_is_only_flashgens_own_checkout(tmp_path, monkeypatch):
    outer = tmp_path / "project"  # e.g. a project whose .venv holds an installed flashgen
    installed = outer / "lib" / "site-packages" / "flashgen" / "bench"
    checkout = tmp_path / "flashgen"
    for repo, code in ((outer, installed), (checkout, checkout / "src" / "flashgen" / "bench")):
        code.mkdir(parents=True)
        (code / "env.py").write_text("")
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "x")
    (outer / "lib" / "src" / "flashgen").mkdir(parents=True)  # looks like a checkout root
    try:
        head = _git(checkout, "rev-parse", "HEAD")
        for code, commit in ((installed, None), (checkout / "src/flashgen/bench", head)):
            env.git_commit.cache_clear()
            monkeypatch.setattr(env, "__file__", str(code / "env.py"))
            assert env.git_commit() == commit
    finally:
        env.git_commit.cache_clear()
