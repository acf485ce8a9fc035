"""Memory profiles: drop_t5 under a budget, budgets on single files, broken configs."""

import json
import shutil

import pytest
import torch

import flashgen
from flashgen.errors import ModelLoadError, UsageError
from flashgen.memory_estimate import GIB, estimate
from flashgen.models.single_file import export_single_file
from flashgen.models.tiny import TinySizes, build_tiny_sd35
from flashgen.profiles import auto_plan, get_profile
from flashgen.quant import QuantLinear
from flashgen.request import GenerationRequest

SIZES = TinySizes(clip_l=64, clip_g=64, t5=128, heads=2, head_dim=32, layers=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_sd35(tmp_path_factory.mktemp("pf") / "tiny", sizes=SIZES)


@pytest.fixture(scope="module")
def budget(tiny):
    """GiB that the desktop profile fits only without T5 (laptop fits either way), at the
    model's defaults (its guidance 5 runs CFG: choose_profile counts it)."""
    desktop = get_profile("desktop")
    with_t5 = estimate(tiny, desktop, width=64, height=64, cfg=True).total
    without = estimate(tiny, desktop, width=64, height=64, cfg=True, has_t5=False).total
    laptop = estimate(tiny, get_profile("laptop"), width=64, height=64, cfg=True).total
    assert laptop < without < with_t5
    return (with_t5 + without) / 2 / GIB


def _schemes(pipe) -> set[str]:
    return {m.scheme.name for m in pipe.transformer.modules() if isinstance(m, QuantLinear)}


def test_a_budget_with_drop_t5_leaves_t5_out_of_the_choice(tiny, budget):
    pipe = flashgen.load(str(tiny), dtype="fp32", drop_t5=True, max_memory=budget)
    assert pipe.load_plan.profile.name == "desktop" and pipe.load_plan.drop_t5
    assert not pipe.has_t5 and _schemes(pipe) == {"bf16-weight"}
    pipe.generate(GenerationRequest("a red circle", steps=1, width=64, height=64, guidance=1.0))
    with_t5 = flashgen.load(str(tiny), dtype="fp32", max_memory=budget)
    assert with_t5.load_plan.profile.name == "laptop"
    assert _schemes(with_t5) == {"int8-dynamic"}


def test_an_automatic_profile_with_drop_t5_leaves_t5_out(tiny, budget, monkeypatch):
    from flashgen import profiles

    monkeypatch.setattr(profiles, "available_gib", lambda: budget)
    cpu = torch.device("cpu")
    dropped = auto_plan(tiny, cpu, torch.float32, drop_t5=True)
    assert dropped.profile.name == "desktop" and dropped.drop_t5
    assert auto_plan(tiny, cpu, torch.float32, drop_t5=False).profile.name == "laptop"


def test_a_budget_on_a_single_file_is_refused_not_ignored(tiny, tmp_path):
    file = export_single_file(tiny, tmp_path / "tiny.safetensors")
    for gib in (0.01, 64):
        with pytest.raises(UsageError, match="--max-memory needs a diffusers folder"):
            flashgen.load(str(file), max_memory=gib)
    pipe = flashgen.load(str(file), profile="laptop")  # a profile alone still applies
    assert _schemes(pipe) == {"int8-dynamic"} and not pipe.has_t5


@pytest.mark.parametrize("field", ["num_attention_heads", "attention_head_dim"])
def test_a_transformer_config_without_its_width_is_a_clear_error(tiny, tmp_path, field):
    broken = shutil.copytree(tiny, tmp_path / "broken")
    path = broken / "transformer" / "config.json"
    config = json.loads(path.read_text())
    del config[field]
    path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="weights do not match its config.json"):
        flashgen.load(str(broken))  # the automatic profile check leaves it to the loader
    with pytest.raises(ModelLoadError, match=f"config.json: no '{field}'"):
        flashgen.load(str(broken), max_memory=64)


def test_a_budget_picks_a_profile_whose_default_guided_request_fits(tiny):
    # the choice counted one unguided image while the request guard counts CFG's doubled batch
    # at the model's default guidance: a budget between the two loaded 'desktop' and then
    # refused every request at the defaults; now it picks the profile that serves them
    from flashgen.errors import OutOfMemoryBudget

    assert flashgen.load(str(tiny)).defaults.guidance > 1.0
    desktop, laptop = get_profile("desktop"), get_profile("laptop")
    unguided = estimate(tiny, desktop, width=64, height=64).total
    guided = estimate(tiny, desktop, width=64, height=64, cfg=True).total
    laptop_guided = estimate(tiny, laptop, width=64, height=64, cfg=True).total
    assert unguided < laptop_guided < guided
    budget = (laptop_guided + guided) / 2 / GIB
    pipe = flashgen.load(str(tiny), dtype="fp32", max_memory=budget)
    assert pipe.load_plan.profile.name == "laptop"
    pipe.generate(pipe.request("a red circle", steps=1))  # the default guidance: no refusal
    with pytest.raises(OutOfMemoryBudget, match="no profile fits"):
        flashgen.load(str(tiny), dtype="fp32", max_memory=(unguided + laptop_guided) / 2 / GIB)
