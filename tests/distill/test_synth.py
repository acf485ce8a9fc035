import json

import torch

from flashgen.distill.data import CaptionTable, synthetic_bank
from flashgen.distill.synth import my_chunks, synthesize


def test_chunks_are_split_over_processes_without_overlap():
    a, b = my_chunks(10, 3, 0, 2), my_chunks(10, 3, 1, 2)
    assert a == [0, 2] and b == [1, 3]
    assert my_chunks(10, 3, 0, 1) == [0, 1, 2, 3]


def test_synth_shards_by_rank_resume_and_load_as_a_bank(tmp_path):
    import flashgen
    from flashgen.models.tiny import build_tiny_sd35

    torch.set_num_threads(1)
    pipe = flashgen.load(str(build_tiny_sd35(tmp_path / "big-teacher", seed=1)))
    prompts = [f"a photo of {n} circles" for n in ("two", "three", "four")] + ["a red square"] * 2
    out = tmp_path / "synth"
    kw = {"steps": 2, "guidance": 2.0, "chunk": 2, "batch_size": 2, "world": 2}
    r0 = synthesize(pipe, prompts, out, rank=0, **kw)
    r1 = synthesize(pipe, prompts, out, rank=1, **kw)
    assert (r0["chunks_written"], r1["chunks_written"]) == (2, 1)
    assert sorted(p.name for p in out.glob("shard_*.safetensors")) == [
        "shard_000000.safetensors",
        "shard_000001.safetensors",
        "shard_000002.safetensors",
    ]
    # prompt i always gets seed + i, whatever the process count
    lines = [json.loads(x) for x in (out / "shard_000001.jsonl").read_text().splitlines()]
    assert [ln["seed"] for ln in lines] == [2, 3]
    again = synthesize(pipe, prompts, out, rank=0, **kw)
    assert again["chunks_written"] == 0 and again["chunks_skipped"] == 2
    bank = synthetic_bank(out)
    assert len(bank) == 5 and bank.captions[:3] == prompts[:3]
    assert bank.latents.shape == (5, 16, 8, 8) and bank.texts[-1] == "a red square"
    # the same prompt and seed as a single-process run of the pipeline gives the same latents
    one = synthesize(pipe, prompts, tmp_path / "one", rank=0, **{**kw, "world": 1})
    assert one["chunks_written"] == 3
    torch.testing.assert_close(synthetic_bank(tmp_path / "one").latents, bank.latents)
    table = CaptionTable(pipe.encode_prompt, bank)
    rows = table.rows(torch.tensor([3, 4, 0]))
    torch.testing.assert_close(rows.embeds[0], rows.embeds[1])
    torch.testing.assert_close(rows.embeds[2:], pipe.encode_prompt(prompts[:1]).embeds)
