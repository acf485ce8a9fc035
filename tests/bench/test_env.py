"""bench.env: how a benchmark ends (its record file and its last JSON line)."""


def test_finish_writes_the_record_and_prints_one_json_line(tmp_path, capsys):
    import json

    from flashgen.bench.env import finish

    result = {"benchmark": "x", "value": 1.5}
    assert finish(result, tmp_path / "sub" / "record.json") is result
    assert json.loads((tmp_path / "sub" / "record.json").read_text()) == result
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    finish(result)  # no record: printed only
    assert json.loads(capsys.readouterr().out) == result
