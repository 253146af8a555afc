"""Stage start-up: torch's CPU threads follow the ``cpu_threads`` param."""
import pytest
import torch
import yaml

from distillery.cli import set_cpu_threads
from distillery.errors import DistilleryError


@pytest.mark.parametrize("params, expected", [({}, [1]), ({"cpu_threads": 3}, [3]), ({"cpu_threads": 0}, [])])
def test_cpu_threads_param_sets_torch_threads(params, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    set_cpu_threads()
    assert calls == expected  # default 1; 0 leaves torch's own default (one per core)


def test_negative_cpu_threads_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("cpu_threads: -2\n")
    with pytest.raises(DistilleryError, match=r"cpu_threads = -2: must be >= 0"):
        set_cpu_threads()


def test_a_stage_records_the_local_checkpoints_of_the_block_it_reads(tmp_path, monkeypatch):
    import json

    from distillery.cli import write_record
    from distillery.data.sources import digest

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt/config.json").write_text("{}")
    bert = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"source": "file:t.csv"}, "teacher": {"model": {"arch": "hf", "pretrained": "ckpt"}},
        "student": {"model": {"arch": "hf", "config": bert, "tokenizer": "bert-base-uncased"}}}))
    from distillery.params import load_params

    write_record(tmp_path / "teacher", load_params(), reads="teacher")
    assert json.loads((tmp_path / "teacher/sources.json").read_text()) == {
        "source_files": {"ckpt": digest(tmp_path / "ckpt")}}
    write_record(tmp_path / "student", load_params(), reads="student")  # a Hub id: nothing local to record
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == ["numerics.json"]


def test_ctrl_c_in_a_stage_prints_one_line_and_exits_130(capsys):
    from distillery.cli import interrupted_quietly

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exited, interrupted_quietly():
        interrupted()
    assert exited.value.code == 130
    assert capsys.readouterr().err.startswith("interrupted: `dvc repro` runs this stage again")
