"""distillery.training.teacher: counting the teacher's forward passes (what bench/caching.py reads)."""
import json
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


def test_a_hub_checkpoint_teacher_comes_with_its_tokenizer(tmp_path, monkeypatch):
    """teacher.checkpoint as a Hub id (not a folder here): its tokenizer is loaded too (text teachers need it)."""
    from distillery.training import teacher

    calls = []
    monkeypatch.setattr(teacher, "load_model", lambda target, trust_remote_code: calls.append(target) or "model")
    monkeypatch.setattr(teacher, "saved_tokenizer", lambda target, trust: calls.append(target) or "tokenizer")
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / teacher.REFERENCE_FILE).write_text(
        json.dumps({"checkpoint": "org/text-teacher", "trust_remote_code": False}))
    assert load_teacher_and_tokenizer(tmp_path / "teacher") == ("model", "tokenizer")
    assert calls == ["org/text-teacher", "org/text-teacher"]


def test_a_checkpoint_teacher_records_its_inputs_and_predicts_through_the_reference(tmp_path, digits):
    """teacher.checkpoint: models/teacher names the checkpoint and records the inputs; predict runs the checkpoint."""
    import numpy as np
    from sklearn.datasets import load_digits

    from distillery.data.sources import digest
    from distillery.models.inference import predict_logits
    from distillery.predict import predict
    from distillery.training.teacher import build_teacher

    from ..conftest import make_params

    checkpoint = build_model(SPEC, [8, 8], digits.label_names)
    checkpoint.save_pretrained(tmp_path / "checkpoint")
    build_teacher(make_params(teacher={"checkpoint": str(tmp_path / "checkpoint")}), digits, tmp_path / "teacher")
    assert sorted(p.name for p in (tmp_path / "teacher").iterdir()) == ["inputs.json", "teacher.json"]
    reference = json.loads((tmp_path / "teacher/teacher.json").read_text())
    assert reference["sha256"] == digest(tmp_path / "checkpoint")["sha256"]  # replaced in place: another output
    test = digits.splits["test"]
    np.save(tmp_path / "rows.npy", load_digits().images[test.ids])
    ids, logits, names, _ = predict(tmp_path / "teacher", tmp_path / "rows.npy", device="cpu")
    assert names == digits.label_names and ids.tolist() == list(range(len(test.ids)))
    np.testing.assert_array_equal(logits, predict_logits(checkpoint, test.inputs, device=torch.device("cpu")))
