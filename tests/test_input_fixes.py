"""Regressions in the inputs `generate` and the server share: the last seed's limit, prompts files
with a BOM or plain prompts starting with `{`, and short temporary names for atomic writes."""

from __future__ import annotations

import pytest

from flashgen.batch import PromptLine, parse_prompts, read_prompts_file
from flashgen.errors import UsageError
from flashgen.images import check_output_file, check_writable_dir, write_atomic
from flashgen.request import GenerationRequest


def test_last_seed_must_be_below_2_63():
    assert GenerationRequest("x", seed=2**63 - 2, num_images=2).seed == 2**63 - 2
    assert GenerationRequest("x", seed=2**63 - 1).seed == 2**63 - 1
    with pytest.raises(ValueError, match=r"seed \+ num_images - 1 = 9223372036854775808\) must be"):
        GenerationRequest("x", seed=2**63 - 1, num_images=2)
    with pytest.raises(ValueError, match=f"use a seed of at most {2**63 - 64}"):
        GenerationRequest("x", seed=2**63 - 10, num_images=64)


@pytest.mark.parametrize(
    "name, text",
    [("p.txt", "a red circle\nb\n"), ("p.jsonl", '{"prompt": "a red circle"}\n{"prompt": "b"}\n')],
)
def test_prompts_file_with_bom(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8-sig"))
    assert [p.prompt for p in read_prompts_file(path)] == ["a red circle", "b"]


def test_plain_prompts_may_start_with_a_brace():
    got = parse_prompts("{red|blue} circle\n# c\n{a|b} {c|d}\n")
    assert got == [PromptLine("{red|blue} circle", line=1), PromptLine("{a|b} {c|d}", line=3)]


def test_first_prompt_line_decides_the_format():
    assert parse_prompts('\n  {"prompt": "a"}\n') == [PromptLine("a", line=2)]
    with pytest.raises(ValueError, match="line 1: comments are not allowed"):
        parse_prompts('# c\n{"prompt": "a"}\n')  # JSON Lines after all: the comment is refused
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        parse_prompts('{"prompt": "a"}\n{red|blue} circle\n')
    with pytest.raises(ValueError, match="line 2: a JSON line in a plain-text prompts file"):
        parse_prompts('a red circle\n{"prompt": "b"}\n')


def test_jsonl_extension_means_json_lines(tmp_path):
    path = tmp_path / "p.JSONL"
    path.write_text("{red|blue} circle\n")
    with pytest.raises(ValueError, match="line 1: not valid JSON"):
        read_prompts_file(path)
    path = tmp_path / "p.txt"
    path.write_text("{red|blue} circle\n")
    assert read_prompts_file(path) == [PromptLine("{red|blue} circle", line=1)]


def test_temporary_name_does_not_grow_with_the_name(tmp_path):
    path = tmp_path / ("a" * 251 + ".png")  # 255 bytes: the longest legal name
    assert write_atomic(path, lambda f: f.write(b"png")) == path
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and path.read_bytes() == b"png"


@pytest.mark.parametrize("check", [check_output_file, check_writable_dir])
def test_too_long_names_are_usage_errors(tmp_path, check):
    with pytest.raises(UsageError, match="too long for the file system"):
        check(tmp_path / ("a" * 300 + ".png"))
    with pytest.raises(UsageError, match="too long for the file system"):
        check(tmp_path / ("d" * 300) / "x.png")
