"""Prompts files and the batch seed rule."""

from __future__ import annotations

import pytest

from flashgen.batch import PromptLine, parse_prompts, plan_batch, read_prompts_file


def test_plain_lines_skip_blanks_and_comments():
    got = parse_prompts("a red circle\n\n# a comment\n  a blue square  \n")
    assert got == [PromptLine("a red circle", line=1), PromptLine("a blue square", line=4)]


def test_jsonl_with_task_and_seed_and_extra_keys():
    text = (
        '{"prompt": "a red circle", "task": "single_object", "seed": 5}\n'
        "\n"
        '{"prompt": "two squares", "objects": ["square", "square"]}\n'
    )
    assert parse_prompts(text) == [
        PromptLine("a red circle", task="single_object", seed=5, line=1),
        PromptLine("two squares", line=3),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "has no prompts"),
        ("\n  \n# only a comment\n", "has no prompts"),
        ('{"prompt": "ok"}\n{"prompt": "broken"\n', "line 2: not valid JSON"),
        ('{"prompt": "ok"}\nplain text line\n', "line 2: not valid JSON"),
        ('{"prompt": "ok"}\n["a list"]\n', "line 2: expected a JSON object"),
        ('{"task": "x"}\n', 'line 1: needs a non-empty string "prompt"'),
        ('{"prompt": ""}\n', 'line 1: needs a non-empty string "prompt"'),
        ('{"prompt": "a", "seed": -1}\n', 'line 1: "seed" must be a non-negative integer'),
        ('{"prompt": "a", "seed": 1.5}\n', 'line 1: "seed" must be a non-negative integer'),
        ('{"prompt": "a", "task": 3}\n', 'line 1: "task" must be a string'),
        ('# c\n{"prompt": "a"}\n', "line 1: comments are not allowed"),
    ],
)
def test_bad_prompts_files_say_which_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_prompts(text)


def test_read_prompts_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_prompts_file(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError):
        read_prompts_file(tmp_path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_prompts_file(bad)
    ok = tmp_path / "p.txt"
    ok.write_text("x\n")
    assert read_prompts_file(ok) == [PromptLine("x", line=1)]


def test_seed_rule_is_positional_and_explicit_seeds_win():
    prompts = [PromptLine("a"), PromptLine("b", seed=100), PromptLine("c")]
    items = plan_batch(prompts, seed=10, num_images=3)
    assert [i.seed for i in items] == [10, 100, 16]
    # a line's default seed does not depend on the explicit seeds of other lines
    items = plan_batch([PromptLine("a"), PromptLine("b"), PromptLine("c")], seed=10, num_images=3)
    assert [i.seed for i in items] == [10, 13, 16]
