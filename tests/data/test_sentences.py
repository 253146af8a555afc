"""``data.validation_split: sentences``: validation of whole sentences, their own phrases out of train, phrases shared
with train sentences kept; checked on a hand-built treebank-like table and through ``prepare``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distillery.data.sentences import sentence_rows, sentence_split_indices
from distillery.errors import DistilleryError

from ..conftest import make_params
from ..text_utils import prepare_text_source


def test_a_sentence_is_a_row_inside_no_other_row_word_for_word():
    texts = ["the film is good", "film is", "the  film is good ", "is good", "good", "a film", "goo", ""]
    # "goo" lies inside "good" as letters, not as a word: a sentence; the second copy of the first row is not
    assert sentence_rows(texts).tolist() == [True, False, False, False, False, True, True, False]


def _treebank(n_sentences: int) -> pd.DataFrame:
    """Rows like SST-2's: each sentence ``s<i> w<i> x<i> shared`` (label i % 2) with its phrases ``s<i> w<i>``
    and ``x<i>``, and one phrase, ``shared``, that lies inside every sentence."""
    rows = []
    for i in range(n_sentences):
        label = i % 2
        rows += [(f"s{i} w{i} x{i} shared", label), (f"s{i} w{i}", label), (f"x{i}", label)]
    rows.append(("shared", 1))
    return pd.DataFrame(rows, columns=["sentence", "label"])


def test_validation_holds_sentences_and_their_own_phrases_leave_train():
    df = _treebank(40)
    params = {"split_seed": 3, "validation_fraction": 0.25, "test_fraction": 0.2}
    index, left_out = sentence_split_indices(df["sentence"].tolist(), df["label"].to_numpy(), params, None, "tb",
                                             ["neg", "pos"])
    texts = df["sentence"].to_numpy()
    validation = set(texts[index["validation"]])
    test = set(texts[index["test"]])
    train = set(texts[index["train"]])
    assert len(validation) == 8 and len(test) == 8  # 0.2 of the 40 sentences to test, then 0.25 of the 32 left
    assert all(t.endswith("shared") for t in validation | test)
    assert np.bincount(df["label"].to_numpy()[index["validation"]]).tolist() == [4, 4]  # stratified
    held = [t.split()[0][1:] for t in validation | test]
    for i in held:  # a held-out sentence's own phrases are in no split
        assert f"s{i} w{i}" not in train and f"x{i}" not in train
    assert left_out == 2 * len(held)
    assert "shared" in train  # it lies inside train sentences too
    assert len(train) == 3 * 24 + 1
    assert not set(index["train"]) & set(index["validation"])
    again, _ = sentence_split_indices(df["sentence"].tolist(), df["label"].to_numpy(), params, None, "tb",
                                      ["neg", "pos"])
    assert all(np.array_equal(index[k], again[k]) for k in index)


def test_rows_of_the_held_out_test_split_are_never_searched():
    df = _treebank(20)
    test_rows = pd.DataFrame({"sentence": ["s0 w0", "x1 shared"], "label": [0, 1]})
    rows = pd.concat([df, test_rows], ignore_index=True)
    mask = np.r_[np.zeros(len(df), bool), np.ones(2, bool)]
    params = {"split_seed": 0, "validation_fraction": 0.2, "test_fraction": 0.2}
    index, left_out = sentence_split_indices(rows["sentence"].tolist(), rows["label"].to_numpy(), params, mask,
                                             "tb", ["neg", "pos"])
    assert index["test"].tolist() == [61, 62]
    assert len(index["validation"]) == 4 and left_out == 8
    assert len(index["train"]) == 61 - 4 - 8


def test_too_few_sentences_of_a_class_is_refused_naming_the_class():
    df = pd.DataFrame({"sentence": ["a b", "a", "c d", "c", "e f"], "label": [0, 0, 0, 0, 1]})
    with pytest.raises(DistilleryError, match="classes {'pos': 1}"):
        sentence_split_indices(df["sentence"].tolist(), df["label"].to_numpy(),
                               {"split_seed": 0, "validation_fraction": 0.3, "test_fraction": 0.2},
                               np.zeros(5, bool), "tb", ["neg", "pos"])


def test_prepare_splits_sentences_and_says_so(tmp_path):
    df = _treebank(60)
    df.iloc[:150].to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    scored = pd.DataFrame({"sentence": [f"t{i} shared" for i in range(10)], "label": [i % 2 for i in range(10)]})
    scored.to_csv(tmp_path / "validation.tsv", sep="\t", index=False)
    prepared = prepare_text_source(tmp_path, tmp_path, source="files",
                                   files={"train": "train.tsv", "validation": "validation.tsv"},
                                   validation_split="sentences", validation_fraction=0.2)
    validation = prepared.splits["validation"].dataset["text"]
    assert len(validation) == 10 and all(t.endswith(" shared") for t in validation)
    assert prepared.meta["sizes"] == {"train": 150 - 10 - 20, "validation": 10, "test": 10}
    origin = prepared.meta["split_origin"]
    assert origin["validation"].startswith("20 % of the sentences of source train")
    assert origin["train"] == "source train, less 20 phrases found only inside validation sentences"
    rows = prepare_text_source(tmp_path / "rows", tmp_path, source="files",
                               files={"train": "train.tsv", "validation": "validation.tsv"}, validation_fraction=0.2)
    assert rows.meta["sizes"] == {"train": 120, "validation": 30, "test": 10}


def test_sentences_need_single_texts():
    with pytest.raises(DistilleryError, match="validation_split = 'sentences' with data.source = 'sklearn:digits'"):
        make_params(data={"validation_split": "sentences"})
    with pytest.raises(DistilleryError, match="validation_split = 'sentences' with sentence pairs"):
        make_params(data={"source": "file:p.csv", "text_pair_column": "b", "validation_split": "sentences"})


HF = {"model": {"arch": "hf", "config": {"model_type": "gpt2"}}}


def _corpus_params(**data) -> dict:
    data = {"source": "files", "files": {"train": "train.tsv", "test": "test.tsv"}, "text_column": "label",
            "validation_split": "sentences", "validation_fraction": 0.25, "vocab_size": 300, "max_length": 32,
            **data}
    return make_params(task="causal_lm", data=data, teacher=HF, student=HF)["data"]


def test_a_language_model_s_prompts_are_split_into_sentences_too(tmp_path):
    from distillery.data.prepare import prepare

    df = _treebank(40)
    df.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    pd.DataFrame({"sentence": [f"t{i} shared" for i in range(10)], "label": [i % 2 for i in range(10)]}).to_csv(
        tmp_path / "test.tsv", sep="\t", index=False)
    prepared = prepare(_corpus_params(prompt_template="Review: {sentence}"), tmp_path / "sentences", tmp_path,
                       task="causal_lm")
    texts = {split: df["sentence"].to_numpy()[prepared.splits[split].ids] for split in ("train", "validation")}
    assert len(texts["validation"]) == 10 and all(t.endswith(" shared") for t in texts["validation"])
    for i in (t.split()[0][1:] for t in texts["validation"]):  # a validation sentence's own phrases leave train
        assert f"s{i} w{i}" not in texts["train"] and f"x{i}" not in texts["train"]
    assert prepared.meta["sizes"] == {"train": 121 - 10 - 20, "validation": 10, "test": 10}
    origin = prepared.meta["split_origin"]
    assert origin["validation"] == "25 % of the sentences of source train (data.validation_split: sentences)"
    assert origin["train"] == "source train, less 20 phrases found only inside validation sentences"
    rows = prepare(_corpus_params(prompt_template="Review: {sentence}", validation_split="rows"), tmp_path / "rows",
                   tmp_path, task="causal_lm")
    assert rows.meta["sizes"] == {"train": 90, "validation": 31, "test": 10}
    plain = prepare(_corpus_params(text_column="sentence"), tmp_path / "plain", tmp_path, task="causal_lm")
    assert plain.meta["sizes"] == prepared.meta["sizes"]  # no prompts: the texts are split the same way


def test_a_corpus_split_into_sentences_needs_one_column_of_them():
    with pytest.raises(DistilleryError, match=r"prompt_template reading 'title', 'body': it splits the texts of one"):
        _corpus_params(prompt_template="{title}: {body}")
    with pytest.raises(DistilleryError, match="validation_split = 'sentences' with data.messages_column"):
        _corpus_params(messages_column="messages", chat_template="tokenizer")
