"""distillery.training.teacher: counting the teacher's forward passes (what bench/caching.py reads)."""
import sys
from pathlib import Path

import torch

from distillery.models.zoo import build_model
from distillery.training.teacher import COUNT_FORWARDS, count_forwards, load_teacher_and_tokenizer

SPEC = {"arch": "mlp", "hidden_sizes": [4], "dropout": 0.0}


def test_count_forwards_logs_script_and_rows_per_pass(tmp_path):
    model = build_model(SPEC, [3], ["a", "b"])
    log = tmp_path / "forwards.tsv"
    count_forwards(model, log)
    model(features=torch.zeros(3, 3))
    model(features=torch.zeros(5, 3))
    script = Path(sys.argv[0]).stem
    assert log.read_text() == f"{script}\t3\n{script}\t5\n"


def test_loaded_teacher_counts_only_with_the_variable(tmp_path, monkeypatch):
    build_model(SPEC, [3], ["a", "b"]).save_pretrained(tmp_path / "teacher")
    log = tmp_path / "forwards.tsv"
    monkeypatch.delenv(COUNT_FORWARDS, raising=False)
    load_teacher_and_tokenizer(tmp_path / "teacher")[0](features=torch.zeros(2, 3))
    assert not log.exists()
    monkeypatch.setenv(COUNT_FORWARDS, str(log))
    load_teacher_and_tokenizer(tmp_path / "teacher")[0](features=torch.zeros(2, 3))
    assert log.read_text().splitlines()[0].endswith("\t2")
