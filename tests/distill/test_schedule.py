"""The sampling-schedule search: the warp is SD3's time shift on the trained sigmas, the choice
is the validation argmax (ties to the trained schedule), and `flashgen distill schedule` writes a
copy of the student whose card holds the chosen sigmas, never touching the source."""

import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashgen.cli import main
from flashgen.distill.schedule import choose_shift, schedule_record, search, shifted_schedule

sigma_lists = st.lists(st.floats(0.01, 0.99), min_size=1, max_size=7, unique=True).map(
    lambda xs: (1.0, *sorted(xs, reverse=True))
)


@settings(max_examples=60, deadline=None)
@given(sigma_lists, st.floats(1.05, 6.0))
def test_shift_keeps_the_ends_and_order_and_moves_every_inner_point_towards_noise(sigmas, shift):
    out = shifted_schedule(sigmas, shift)
    assert len(out) == len(sigmas) and out[0] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(out))
    assert all(o >= s - 1e-4 for o, s in zip(out, sigmas))
    assert all(0 < o <= 1 for o in out)
    # the warp is SD3's: shift s then 1/s is the identity (up to the card's 4 decimals, which the
    # inverse warp stretches by up to `shift`)
    back = shifted_schedule(out, 1 / shift)
    assert all(math.isclose(a, b, abs_tol=1e-4 * shift) for a, b in zip(back, sigmas))


def test_known_values_and_shift_one_is_the_identity():
    assert shifted_schedule((1.0, 0.5), 2.0) == (1.0, 0.6667)
    assert shifted_schedule((1.0, 0.75, 0.5, 0.25), 3.0) == (1.0, 0.9, 0.75, 0.5)
    assert shifted_schedule((1.0, 0.3), 1.0) == (1.0, 0.3)
    with pytest.raises(ValueError, match="> 0"):
        shifted_schedule((1.0, 0.5), 0.0)


def test_choose_shift_takes_the_best_and_breaks_ties_towards_the_trained_schedule():
    scores = {1.0: 0.5, 1.5: 0.6, 2.0: 0.7, 3.0: 0.6}
    assert choose_shift(list(scores), scores.__getitem__) == (2.0, scores)
    flat = {0.5: 0.4, 1.0: 0.4, 2.0: 0.4}
    assert choose_shift(list(flat), flat.__getitem__)[0] == 1.0
    assert choose_shift([1.5, 3.0], {1.5: 0.1, 3.0: 0.1}.__getitem__)[0] == 1.5
    with pytest.raises(ValueError):
        choose_shift([], lambda s: 0.0)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from flashgen.models.modelcard import ModelCard
    from flashgen.models.tiny import build_tiny_sd35

    card = ModelCard(
        name="tiny-student", kind="student", default_steps=2, default_guidance=1.0,
        sigmas=(1.0, 0.5),
    )  # fmt: skip
    return build_tiny_sd35(tmp_path_factory.mktemp("s") / "student", seed=2, card=card)


def test_schedule_command_writes_a_retuned_copy_and_leaves_the_source(student, tmp_path, capsys):
    import torch

    from flashgen.models.modelcard import read_card

    torch.set_num_threads(1)
    before = {p.name: p.read_bytes() for p in student.rglob("*") if p.is_file()}
    out = tmp_path / "retuned"
    argv = ["distill", "schedule", "--model", str(student), "--out", str(out), "--prompts", "6"]
    assert main([*argv, "--shifts", "1", "2", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = json.loads((out / "distill.json").read_text())["schedule"]
    assert record["trained_sigmas"] == [1.0, 0.5] and record["prompts"] == 6
    assert set(record["scores"]) == {"1.0", "2.0", "3.0"}
    overall = {float(s): r["overall"] for s, r in record["scores"].items()}
    assert record["shift"] == choose_shift(list(overall), overall.__getitem__)[0]
    assert (
        summary["sigmas"] == record["sigmas"] == list(shifted_schedule((1, 0.5), record["shift"]))
    )
    assert list(read_card(out).sigmas) == record["sigmas"]
    weights = "transformer/diffusion_pytorch_model.safetensors"
    assert (out / weights).read_bytes() == (student / weights).read_bytes()
    after = {p.name: p.read_bytes() for p in student.rglob("*") if p.is_file()}
    assert after == before

    # a retuned copy is searched from its trained sigmas again, never warped twice
    again = tmp_path / "again"
    assert main(["distill", "schedule", "--model", str(out), "--out", str(again),
                 "--prompts", "6", "--shifts", "2"]) == 0  # fmt: skip
    assert json.loads((again / "distill.json").read_text())["schedule"]["sigmas"] == [1.0, 0.6667]


def test_schedule_command_refuses_bad_input_in_one_line(student, tmp_path, capsys):
    from flashgen.models.tiny import build_tiny_sd35

    teacher = build_tiny_sd35(tmp_path / "teacher", seed=0)
    (tmp_path / "taken").mkdir()
    cases = [
        (["--model", str(student), "--out", str(tmp_path / "taken")], "exists"),
        (["--model", str(teacher), "--out", str(tmp_path / "x")], "not a few-step student"),
        (["--model", str(student), "--out", str(tmp_path / "y"), "--shifts", "0"], "> 0"),
        (["--model", "no-such-model", "--out", str(tmp_path / "z")], "unknown model"),
    ]
    capsys.readouterr()
    for args, message in cases:
        assert main(["distill", "schedule", *args]) == 2, args
        err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_unscored_record_has_the_searched_layout():
    # merge.validate = false: one shift taken unscored, recorded like a search
    record = schedule_record((1.0, 0.5), 2.0, {})
    assert record["sigmas"] == [1.0, 0.6667] and record["trained_sigmas"] == [1.0, 0.5]
    assert (record["shift"], record["scores"], record["prompts"]) == (2.0, {}, 0)
    scored = search((1.0, 0.5), [2.0], lambda s: {"overall": 0.5, "n": 7}, lambda m: None)[0]
    assert set(scored) == set(record) and scored["prompts"] == 7
