"""Text sources, offline: every source kind (one file, one file per split, a Hub-style dataset directory), hidden
test labels, sentence-pair columns, and bad text data refused naming the file, the column and the rows."""
from __future__ import annotations

from pathlib import Path

import pytest

from distillery.data.prepared import load_prepared
from distillery.errors import DistilleryError

from ..conftest import make_params
from ..text_utils import prepare_text_source


def test_files_source_makes_validation_from_train_and_scores_source_validation(text_assets, tmp_path):
    prepared = prepare_text_source(tmp_path, text_assets["root"], source="files",
                        files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    sizes = prepared.meta["sizes"]
    assert sizes == {"train": 96, "validation": 24, "test": 40}
    assert prepared.meta["split_origin"]["test"] == "source validation"
    test = prepared.splits["test"]
    assert test.ids.tolist() == list(range(120, 160))  # ids: positions in the source, train first
    assert list(test.dataset["text"]) == text_assets["df"]["sentence"].iloc[120:].tolist()
    assert test.labels.tolist() == text_assets["df"]["label"].iloc[120:].tolist()
    assert set(prepared.splits["train"].ids) | set(prepared.splits["validation"].ids) == set(range(120))
    # stored as datasets Arrow and read back memory-mapped
    assert load_prepared(tmp_path / "prepared").splits["train"].dataset.column_names == ["id", "text", "label"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_one_file_is_split_with_the_seed_and_train_can_be_capped(text_assets, tmp_path, suffix):
    df = text_assets["df"].assign(label=text_assets["df"]["label"].map({0: "neg", 1: "pos"}))
    path = tmp_path / f"all{suffix}"
    {".csv": lambda: df.to_csv(path, index=False), ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
     ".parquet": lambda: df.to_parquet(path)}[suffix]()
    first = prepare_text_source(tmp_path / "a", tmp_path, source=f"file:{path.name}", label_names=["neg", "pos"])
    again = prepare_text_source(tmp_path / "b", tmp_path, source=f"file:{path.name}", label_names=["neg", "pos"])
    assert first.meta["sizes"] == {"train": 102, "validation": 26, "test": 32}
    for split in ("train", "validation", "test"):
        assert first.splits[split].ids.tolist() == again.splits[split].ids.tolist()
    assert first.label_names == ["neg", "pos"]
    rows = first.splits["test"].ids
    assert first.splits["test"].labels.tolist() == text_assets["df"]["label"].to_numpy()[rows].tolist()
    capped = prepare_text_source(tmp_path / "c", tmp_path, source=f"file:{path.name}", label_names=["neg", "pos"],
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


def test_hf_source_with_hidden_test_labels_scores_validation_and_the_report_says_so(text_assets, tmp_path):
    from distillery.evaluation.report import evaluated_on

    _hf_dir(tmp_path / "glue_like", text_assets["df"], hidden_test=True)
    prepared = prepare_text_source(tmp_path, tmp_path, source="hf:glue_like")
    assert prepared.meta["hidden_test_labels"] is True
    assert prepared.label_names == ["negative", "positive"]  # from the ClassLabel
    assert prepared.splits["test"].ids.tolist() == list(range(100, 130))  # the source validation split
    assert prepared.meta["sizes"] == {"train": 80, "validation": 20, "test": 30}
    assert (prepared.splits["test"].labels >= 0).all()
    assert "validation split (its test labels are hidden)" in evaluated_on(prepared.meta)


def evaluated_on_test(meta) -> bool:
    from distillery.evaluation.report import evaluated_on

    return evaluated_on(meta) == "Test split"


def test_hf_source_with_labelled_splits_keeps_them(text_assets, tmp_path):
    _hf_dir(tmp_path / "labelled", text_assets["df"], hidden_test=False)
    prepared = prepare_text_source(tmp_path, tmp_path, source="hf:labelled")
    assert prepared.meta["sizes"] == {"train": 100, "validation": 30, "test": 30}
    assert prepared.meta["hidden_test_labels"] is False
    assert evaluated_on_test(prepared.meta)
    assert "classes_without_train_rows" not in prepared.meta  # every class has train rows: nothing recorded

    only_neg = text_assets["df"].assign(label=text_assets["df"]["label"].where(text_assets["df"].index >= 100, 0))
    _hf_dir(tmp_path / "one_class_in_train", only_neg, hidden_test=False)
    prepared = prepare_text_source(tmp_path / "one", tmp_path, source="hf:one_class_in_train")
    positives = {split: int((part.labels == 1).sum()) for split, part in prepared.splits.items() if split != "train"}
    assert prepared.meta["classes_without_train_rows"] == {prepared.label_names[1]: positives}


@pytest.mark.parametrize(
    "frame_edit, data, message",
    [
        (lambda df: df.rename(columns={"sentence": "txt"}), {},
         "missing column(s) 'sentence' (data.text_column); the file has columns ['txt', 'label']"),
        (lambda df: df, {"label_column": "Label"},
         "missing column(s) 'Label' (data.label_column); the file has columns ['sentence', 'label']; did you mean "
         "'label'?"),
        (lambda df: df.assign(sentence=df["sentence"].where(df.index != 7, "   ")), {}, "empty or NaN inputs: lines [9]"),
        (lambda df: df.assign(label=df["label"].where(df.index != 11, 5)), {"label_names": ["neg", "pos"]},
         "labels outside 0..1: lines [13] have [5]"),
        (lambda df: df.assign(label=df["label"].map({0: "neg", 1: "pos"}).where(df.index != 3, "meh")),
         {"label_names": ["neg", "pos"]}, "labels outside the label set ['neg', 'pos']: lines [5]"),
    ],
)
def test_bad_text_data_names_file_column_and_ids(text_assets, tmp_path, frame_edit, data, message):
    frame_edit(text_assets["df"].iloc[:40].copy()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DistilleryError) as err:
        prepare_text_source(tmp_path, tmp_path, source="file:bad.csv", **data)
    assert "bad.csv" in str(err.value) and message in str(err.value)
    assert not (tmp_path / "prepared").exists()


def test_a_test_file_without_the_label_column_is_named_with_the_param(text_assets, tmp_path):
    text_assets["df"].iloc[:40].to_csv(tmp_path / "train.csv", index=False)
    text_assets["df"].iloc[40:50].drop(columns="label").to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DistilleryError) as err:
        prepare_text_source(tmp_path, tmp_path, source="files", files={"train": "train.csv", "test": "test.csv"})
    assert str(err.value).endswith("test.csv: missing column(s) 'label' (data.label_column); the file has columns "
                                   "['sentence']")  # its own columns: no id added
    assert not (tmp_path / "prepared").exists()


def test_test_rows_that_repeat_a_train_row_s_text_are_counted_and_warned_about(text_assets, tmp_path, caplog):
    import logging

    df = text_assets["df"].iloc[:40].reset_index(drop=True)
    df.to_csv(tmp_path / "train.csv", index=False)
    df.iloc[[0, 1, 2]].assign(label=[1, 1, 1]).to_csv(tmp_path / "test.csv", index=False)  # train's texts again
    with caplog.at_level(logging.WARNING):
        prepared = prepare_text_source(tmp_path, tmp_path, source="files",
                                       files={"train": "train.csv", "test": "test.csv"})
    train = set(prepared.splits["train"].dataset["text"])
    by_hand = sum(text in train for text in df["sentence"].iloc[:3])  # one may have gone to validation
    assert by_hand >= 1 and prepared.meta["texts_also_in_train"] == {"validation": 0, "test": by_hand}
    assert f"the text of {by_hand} of the 3 test rows also stands in train" in caplog.text


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
    with pytest.raises(DistilleryError, match="data.source_splits with data.source = 'file:x.csv': it names the splits"):
        make_params(data={"source": "file:x.csv", "source_splits": {"train": "a"}})
    with pytest.raises(DistilleryError, match="data.source_splits = .*: must map 'train'"):
        make_params(data={"source": "hf:x", "source_splits": {"test": "a"}})
    with pytest.raises(DistilleryError, match="split names must be distinct non-empty strings"):
        make_params(data={"source": "hf:x", "source_splits": {"train": "a", "test": "a"}})
