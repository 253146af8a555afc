"""New rows as a model's inputs (``distillery.data.inputs``): the record prepare leaves, and every kind of source's
rows read again to the same bits as prepare made them; bad rows refused before a model runs, naming file,
column and rows."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distillery.data.inputs import INPUTS_FILE, input_record, load_record, read_rows, save_record
from distillery.data.prepare import prepare
from distillery.data.prepared import Prepared, load_prepared
from distillery.errors import DistilleryError

from ..conftest import make_params
from ..text_utils import prepare_text_source, sentences


def mixed_table(n: int = 80) -> pd.DataFrame:
    """Two numeric features, a categorical one, an own id column and a two-class label."""
    i = np.arange(n)
    return pd.DataFrame({"row": 1000 + 3 * i, "size": (i % 7) * 1.5 + 0.25 * (i % 3), "weight": 1000.0 * (i % 5) + i,
                         "colour": np.array(["red", "green", "blue"])[i % 3], "kind": np.where(i % 2, "pear", "apple")})


def prepared_table(tmp_path, scaling: str, df: pd.DataFrame | None = None):
    (df if df is not None else mixed_table()).to_csv(tmp_path / "t.csv", index=False)
    data = make_params(data={"source": "file:t.csv", "feature_columns": "all", "label_column": "kind",
                             "label_names": ["apple", "pear"], "categorical": "onehot", "id_column": "row",
                             "scaling": scaling})["data"]
    prepare(data, tmp_path / "out", tmp_path)
    return load_prepared(tmp_path / "out")


@pytest.mark.parametrize("scaling", ["standard", "minmax", "none"])
def test_a_tables_rows_read_again_give_the_prepared_inputs_bit_for_bit(tmp_path, scaling):
    prepared = prepared_table(tmp_path, scaling)
    record = input_record(prepared)
    assert record["kind"] == "table" and record["categories"] == {"colour": ["blue", "green", "red"]}
    assert record["feature_columns"] == ["size", "weight", "colour"] and record["label_names"] == ["apple", "pear"]
    rows = read_rows(record, tmp_path / "t.csv")
    by_id = dict(zip(rows.ids.tolist(), rows.inputs))
    assert rows.inputs.dtype == np.float32 and rows.inputs.shape == (80, 5)  # 2 numbers, 3 one-hot
    for split in prepared.splits.values():
        np.testing.assert_array_equal(np.stack([by_id[i] for i in split.ids]), split.inputs)


def test_unseen_categories_encode_as_zeros_with_a_warning_and_positions_are_ids(tmp_path, caplog):
    prepared_table(tmp_path, "none")
    new = mixed_table(3).drop(columns=["row", "kind"]).assign(colour=["red", "purple", "blue"])
    new.to_json(tmp_path / "new.jsonl", orient="records", lines=True)
    with caplog.at_level(logging.WARNING):
        rows = read_rows(input_record(load_prepared(tmp_path / "out")), tmp_path / "new.jsonl")
    assert rows.ids.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(rows.inputs[:, 2:], [[0, 0, 1], [0, 0, 0], [1, 0, 0]])  # blue, green, red
    np.testing.assert_array_equal(rows.inputs[:, :2], new[["size", "weight"]].to_numpy(np.float32))
    assert "column 'colour' has 1 categories the model never saw in train" in caplog.text and "purple" in caplog.text


@pytest.mark.parametrize("change, message", [
    (lambda df: df.drop(columns=["weight"]),
     r"missing feature column\(s\) \['weight'\] of the model \(it takes \['size', 'weight', 'colour'\]\); the file "
     r"has columns \['row', 'size', 'colour', 'kind'\]$"),
    (lambda df: df.rename(columns={"weight": "Weight"}),
     r"missing feature column\(s\) \['weight'\] of the model \(it takes \['size', 'weight', 'colour'\]\); the file "
     r"has columns \['row', 'size', 'Weight', 'colour', 'kind'\]; did you mean 'Weight'\?$"),
    (lambda df: df.assign(size=["x" if i == 4 else v for i, v in enumerate(df["size"])]),
     r"column 'size' has 1 non-numeric values: row \[1012\] have \['x'\]"),
    (lambda df: df.assign(colour=[None if i == 2 else v for i, v in enumerate(df["colour"])]),
     r"column 'colour' has 1 missing values: row \[1006\]"),
    (lambda df: df.assign(row=[1000] * len(df)),
     r"column 'row' holds the rows' ids, which must be unique: 1 id appears more than once: \[1000\]"),
    (lambda df: df.assign(row=["r7" if i == 3 else 1000 + i for i in range(len(df))]),
     r"column 'row' holds the rows' ids, which must be integers of 64 bits \(the output is keyed by them\): no such integer in 1 of "
     r"the 10 rows: lines \[5\] have \['r7'\]; map the ids to integers, or rename the column to number the rows "
     r"from 0$"),
])
def test_bad_table_rows_are_refused_naming_column_and_rows(tmp_path, change, message):
    prepared = prepared_table(tmp_path, "standard")
    change(mixed_table(10)).to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DistilleryError, match=message):
        read_rows(input_record(prepared), tmp_path / "new.csv")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An npz source of uint8 images (pixels: scaled by 255, no scaler) and its prepared splits."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (90, 5, 4), dtype=np.uint8)
    y = rng.integers(0, 3, 90)
    np.savez(root / "img.npz", x_train=x[:70], y_train=y[:70], x_test=x[70:], y_test=y[70:])
    prepare(make_params(data={"source": "npz:img.npz"})["data"], root / "out", root)
    return root, x, load_prepared(root / "out")


def test_images_read_again_give_the_prepared_inputs_bit_for_bit_flat_or_not(images, tmp_path):
    root, x, prepared = images
    record = input_record(prepared)
    assert record == {"kind": "array", "pixel_max": 255.0, "label_names": ["0", "1", "2"], "shape": [5, 4],
                      "scaling": {"param": "auto", "scaler": "none"}}
    test = prepared.splits["test"]
    np.savez(tmp_path / "new.npz", pixels=x[test.ids], id=test.ids)
    rows = read_rows(record, tmp_path / "new.npz")
    assert rows.ids.tolist() == test.ids.tolist()
    np.testing.assert_array_equal(rows.inputs, test.inputs)
    np.save(tmp_path / "flat.npy", x[test.ids].reshape(len(test.ids), -1).astype(np.int64))  # flat, other dtype
    np.testing.assert_array_equal(read_rows(record, tmp_path / "flat.npy").inputs, test.inputs)


def test_standard_scaled_arrays_read_again_bit_for_bit(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 7.0, (60, 6))
    y = np.arange(60) % 2
    np.savez(tmp_path / "f.npz", x_train=x[:45], y_train=y[:45], x_test=x[45:], y_test=y[45:])
    prepare(make_params(data={"source": "npz:f.npz"})["data"], tmp_path / "out", tmp_path)
    prepared = load_prepared(tmp_path / "out")
    record = input_record(prepared)
    assert record["pixel_max"] is None and record["scaling"]["scaler"] == "standard"
    validation = prepared.splits["validation"]
    np.save(tmp_path / "new.npy", x[validation.ids])
    np.testing.assert_array_equal(read_rows(record, tmp_path / "new.npy").inputs, validation.inputs)


@pytest.mark.parametrize("arrays, array, message", [
    ({"a": np.zeros((2, 5, 4)), "b": np.zeros((2, 5, 4))}, None, r"holds the arrays \['a', 'b'\]; name the one"),
    ({"a": np.zeros((2, 5, 4))}, "c", r"--array c: .* has no such array; it has \['a'\]"),
    ({"a": np.zeros((2, 4, 5))}, None, r"inputs of shape \[2, 4, 5\]; the model takes \(N, 5, 4\) or \(N, 20\)"),
    ({"a": np.full((3, 5, 4), 256.0)}, None, r"pixels of 0..255 as its source holds them; 3 rows hold values "
                                             r"outside: ids \[0, 1, 2\]"),
    ({"a": np.where(np.arange(60).reshape(3, 5, 4) == 25, np.nan, 1.0)}, None,
     r"1 row holds NaN or infinite values: ids \[1\]"),
    ({"a": np.zeros((2, 5, 4)), "id": np.array([4, 4])}, None, r"1 id appears more than once: \[4\]"),
    ({"a": np.zeros((0, 5, 4))}, None, "no rows"),
])
def test_bad_arrays_are_refused_before_any_work(images, tmp_path, arrays, array, message):
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(DistilleryError, match=message):
        read_rows(input_record(images[2]), tmp_path / "new.npz", array)


def test_a_file_of_the_other_kind_is_refused(images, tmp_path):
    with pytest.raises(DistilleryError, match=r"takes arrays of shape \[5, 4\]: give a .npy or .npz file"):
        read_rows(input_record(images[2]), tmp_path / "rows.csv")
    prepared = prepared_table(tmp_path, "none")
    with pytest.raises(DistilleryError, match=r"takes a table with feature columns; give a CSV"):
        read_rows(input_record(prepared), tmp_path / "rows.npy")


def test_text_rows_keep_their_ids_and_empty_texts_are_refused(tmp_path):
    df = sentences(60).assign(key=lambda d: 500 + np.arange(len(d)))
    df.to_csv(tmp_path / "s.csv", index=False)
    prepared = prepare_text_source(tmp_path, tmp_path, source="file:s.csv", id_column="key")
    record = input_record(prepared)
    assert record == {"kind": "text", "columns": {"text": "sentence"}, "id_column": "key", "empty_text": "refuse",
                      "label_names": prepared.label_names}
    rows = read_rows(record, tmp_path / "s.csv")
    test = prepared.splits["test"].dataset
    by_id = dict(zip(rows.ids.tolist(), rows.dataset["text"]))
    assert [by_id[i] for i in test["id"]] == test["text"]
    df.assign(sentence=["  " if i == 7 else s for i, s in enumerate(df["sentence"])]).drop(columns=["label"]) \
        .to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DistilleryError, match=r"column 'sentence' has 1 empty or NaN inputs: key \[507\]"):
        read_rows(record, tmp_path / "new.csv")


def test_rows_without_the_models_id_column_are_numbered_with_a_warning(tmp_path, caplog):
    df = sentences(60).assign(key=lambda d: 500 + np.arange(len(d)))
    df.to_csv(tmp_path / "s.csv", index=False)
    record = input_record(prepare_text_source(tmp_path, tmp_path, source="file:s.csv", id_column="key"))
    df.drop(columns=["key", "label"]).head(3).to_csv(tmp_path / "new.csv", index=False)
    with caplog.at_level(logging.WARNING):
        assert read_rows(record, tmp_path / "new.csv").ids.tolist() == [0, 1, 2]
    assert "new.csv: no column 'key' (the model's data.id_column): the rows are numbered from 0" in caplog.text


def test_rows_without_the_models_id_column_are_keyed_by_a_column_id_with_a_warning(tmp_path, caplog):
    df = sentences(60).assign(key=lambda d: 500 + np.arange(len(d)))
    df.to_csv(tmp_path / "s.csv", index=False)
    record = input_record(prepare_text_source(tmp_path, tmp_path, source="file:s.csv", id_column="key"))
    df.rename(columns={"key": "id"}).head(3).to_csv(tmp_path / "new.csv", index=False)
    with caplog.at_level(logging.WARNING):
        rows = read_rows(record, tmp_path / "new.csv")
    assert rows.ids.tolist() == rows.dataset["id"] == [500, 501, 502]
    assert "new.csv: no column 'key' (the model's data.id_column): the file's column 'id' holds the rows' ids" in \
        caplog.text
    caplog.clear()
    df.assign(id=[7] * 60).head(3).to_csv(tmp_path / "both.csv", index=False)  # the model's own column comes first
    with caplog.at_level(logging.WARNING):
        assert read_rows(record, tmp_path / "both.csv").ids.tolist() == [500, 501, 502]
    assert caplog.text == ""


def test_the_record_is_saved_and_loaded_and_a_folder_without_one_is_explained(tmp_path, images):
    record = input_record(images[2])
    save_record(record, tmp_path)
    assert load_record(tmp_path) == record == json.loads((tmp_path / INPUTS_FILE).read_text())
    (tmp_path / "old").mkdir()
    save_record(None, tmp_path / "old")  # prepared before prepare recorded the inputs: nothing
    with pytest.raises(DistilleryError, match=r"old: no inputs.json: not a model saved by the pipeline .* \(run `dvc "
                                              r"repro` again"):
        load_record(tmp_path / "old")
    assert input_record(Prepared({}, [], [], {"kind": "causal_lm"})) is None


LM_RECORD = {"kind": "causal_lm", "text_column": "answer", "prompt_column": "question", "prompt_template": None,
             "messages_column": None, "id_column": None, "label_names": [], "max_length": 12, "chat_template": None,
             "end_of_turn": ""}
CHAT = ("{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }};{% endfor %}"
        "{% if add_generation_prompt %}<a>{% endif %}")


@pytest.fixture(scope="module")
def bpe():
    from distillery.data.corpus import train_bpe

    return train_bpe(["what is it? a cat", "where is it? here", "<u>hi;<a>yes;"] * 5, 300, 12)


def prompts_file(tmp_path, rows: list[dict]):
    pd.DataFrame(rows).to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    return tmp_path / "p.jsonl"


def test_prompts_are_tokenized_as_prepare_wrote_them_with_their_references(tmp_path, bpe):
    from distillery.data.corpus import encode
    from distillery.data.inputs import read_prompts

    path = prompts_file(tmp_path, [{"question": "what is it?", "answer": " a cat"},
                                   {"question": "where", "answer": None}])
    prompts = read_prompts(LM_RECORD, path, bpe)
    assert prompts.ids.tolist() == [0, 1] and prompts.texts == ["what is it?", "where"]
    assert prompts.references == [" a cat", None]
    tokens, lengths = encode(bpe, ["what is it?", "where"], end=False)
    np.testing.assert_array_equal(prompts.tokens, tokens)
    np.testing.assert_array_equal(prompts.lengths, lengths)
    templated = {**LM_RECORD, "prompt_column": None, "prompt_template": "Q {question}", "chat_template": CHAT}
    prompts = read_prompts(templated, prompts_file(tmp_path, [{"question": "hi"}]), bpe)
    assert prompts.texts == ["<u>Q hi;<a>"] and prompts.references == [None]  # a user message, then the answer's turn
    plain = {**LM_RECORD, "prompt_column": None}  # a plain corpus: its text is continued
    assert read_prompts(plain, prompts_file(tmp_path, [{"answer": "what"}]), bpe).texts == ["what"]


def test_conversations_are_prompts_and_a_last_answer_their_reference(tmp_path, bpe):
    from distillery.data.inputs import read_prompts

    record = {**LM_RECORD, "prompt_column": None, "messages_column": "messages", "chat_template": CHAT}
    user = {"role": "user", "content": "hi"}
    path = prompts_file(tmp_path, [{"id": 7, "messages": [user]},
                                   {"id": 9, "messages": [user, {"role": "assistant", "content": "yes"}]}])
    prompts = read_prompts(record, path, bpe)
    assert prompts.ids.tolist() == [7, 9] and prompts.texts == ["<u>hi;<a>"] * 2
    assert prompts.references == [None, "yes"]
    bad = prompts_file(tmp_path, [{"id": 7, "messages": [{"role": "assistant", "content": "yes"}]},
                                  {"id": 8, "messages": "not a chat"}, {"id": 9, "messages": [user]}])
    with pytest.raises(DistilleryError, match=r"column 'messages' \(data.messages_column\): 2 rows are not lists of "
                                              r"\{role, content\} messages .*: id \[7, 8\]"):
        read_prompts(record, bad, bpe)
    blank = {"role": "user", "content": " "}
    unnamed = prompts_file(tmp_path, [{"messages": [user]}, {"messages": []}, {"messages": [blank]}])  # lines: no id
    with pytest.raises(DistilleryError, match=r"2 rows are not lists of \{role, content\} messages with text before "
                                              r"any last answer: lines \[2, 3\]"):
        read_prompts(record, unnamed, bpe)
    no_answer = prompts_file(tmp_path, [{"messages": [user, {"role": "assistant", "content": ""}]}])
    assert read_prompts(record, no_answer, bpe).references == [None]  # a blank answer is none, as prepare drops it


@pytest.mark.parametrize("rows, message", [
    ([{"question": "what is it? " * 6}],
     r"1 prompt tokenizes to nothing or to data.max_length = 12 tokens or more \(the positions the model learnt\), "
     r"leaving no room for an answer: lines \[1\] has \[\d+\] tokens"),
    ([{"question": "what"}, {"question": " "}], r"column 'question' has 1 empty or NaN inputs: lines \[2\]"),
    ([{"answer": "x"}], r"missing column\(s\) 'question' \(data.prompt_column\)"),
])
def test_bad_prompts_are_refused_naming_the_rows(tmp_path, bpe, rows, message):
    from distillery.data.inputs import read_prompts

    with pytest.raises(DistilleryError, match=message):
        read_prompts(LM_RECORD, prompts_file(tmp_path, rows), bpe)


def test_csv_text_that_reads_as_numbers_stays_as_written(tmp_path, bpe):
    from distillery.data.inputs import read_prompts

    pd.DataFrame({"question": ["007", "1.50"], "answer": [" 7", " 2"]}).to_csv(tmp_path / "q.csv", index=False)
    prompts = read_prompts(LM_RECORD, tmp_path / "q.csv", bpe)
    assert prompts.texts == ["007", "1.50"] and prompts.references == [" 7", " 2"]
    record = {"kind": "text", "columns": {"text": "sentence"}, "id_column": None, "label_names": ["a", "b"]}
    pd.DataFrame({"sentence": ["007", "1.50"]}).to_csv(tmp_path / "s.csv", index=False)
    assert read_rows(record, tmp_path / "s.csv").dataset["text"] == ["007", "1.50"]


def test_sentence_pairs_are_read_as_both_columns(tmp_path):
    from ..text_utils import pairs

    pairs(60).to_csv(tmp_path / "p.csv", index=False)
    prepared = prepare_text_source(tmp_path, tmp_path, source="file:p.csv", text_column="premise",
                                   text_pair_column="hypothesis")
    record = input_record(prepared)
    assert record["columns"] == {"text": "premise", "text_pair": "hypothesis"}
    rows = read_rows(record, tmp_path / "p.csv")
    test = prepared.splits["test"].dataset
    by_id = {i: (a, b) for i, a, b in zip(rows.ids.tolist(), rows.dataset["text"], rows.dataset["text_pair"])}
    assert [by_id[i] for i in test["id"]] == list(zip(test["text"], test["text_pair"]))
    pairs(3).drop(columns=["hypothesis"]).to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DistilleryError, match=r"missing column\(s\) 'hypothesis' \(the model's text_pair column\)"):
        read_rows(record, tmp_path / "new.csv")


def test_with_empty_text_kept_a_pair_without_its_second_text_is_an_empty_text(tmp_path):
    from ..text_utils import pairs

    df = pairs(60)
    df.loc[[3, 8], "hypothesis"] = [None, "  "]
    df.to_csv(tmp_path / "p.csv", index=False)
    kwargs = {"source": "file:p.csv", "text_column": "premise", "text_pair_column": "hypothesis"}
    with pytest.raises(DistilleryError, match=r"column 'hypothesis' has 2 empty or NaN inputs: lines \[5, 10\]"):
        prepare_text_source(tmp_path, tmp_path, **kwargs)
    prepared = prepare_text_source(tmp_path, tmp_path, **kwargs, empty_text="keep")
    texts = {i: t for split in prepared.splits.values() for i, t in zip(split.ids, split.dataset["text_pair"])}
    assert (texts[3], texts[8]) == ("", "  ") and len(texts) == 60  # kept as written, NaN as ""
    record = input_record(prepared)
    assert record["empty_text"] == "keep"
    df.drop(columns=["label"]).to_csv(tmp_path / "new.csv", index=False)
    rows = read_rows(record, tmp_path / "new.csv")
    assert rows.dataset["text_pair"][3] == "" and rows.dataset["text_pair"][8] == "  "
    with pytest.raises(DistilleryError, match=r"column 'hypothesis' has 2 empty or NaN inputs"):
        read_rows({**record, "empty_text": "refuse"}, tmp_path / "new.csv")


def test_empty_text_is_a_text_source_s_param():
    with pytest.raises(DistilleryError, match="data.empty_text = 'keep' with data.source = 'sklearn:digits'"):
        make_params(data={"empty_text": "keep"})


def test_images_divided_already_are_refused_unless_taken_as_given(images, tmp_path, caplog):
    record = input_record(images[2])  # pixels of 0..255
    np.save(tmp_path / "divided.npy", np.full((2, 5, 4), 0.5))
    with pytest.raises(DistilleryError, match=r"divided.npy: every pixel lies within 0..1, but the model learnt from "
                                              r"pixels of 0..255 as its source holds them \(prepare divides them by "
                                              r"255\): if these are divided already, multiply them by 255 first; to "
                                              r"predict on them as they are, pass --pixels-as-given"):
        read_rows(record, tmp_path / "divided.npy")
    with caplog.at_level("WARNING", logger="distillery.data.inputs"):
        given = read_rows(record, tmp_path / "divided.npy", pixels_as_given=True)
    np.testing.assert_array_equal(given.inputs, np.full((2, 5, 4), np.float32(0.5 / 255)))  # divided once more
    assert caplog.text == ""
    np.save(tmp_path / "binary.npy", np.eye(5, 4)[None].repeat(2, axis=0))  # whole-number pixels: as the source's
    np.testing.assert_array_equal(read_rows(record, tmp_path / "binary.npy").inputs,
                                  np.eye(5, 4, dtype=np.float32)[None].repeat(2, axis=0) / np.float32(255))


def test_a_file_given_for_the_model_folder_is_named_as_such(tmp_path, images):
    save_record(input_record(images[2]), tmp_path)
    with pytest.raises(DistilleryError, match=r"inputs.json: a file, not a model folder"):
        load_record(tmp_path / INPUTS_FILE)


def test_a_model_folder_that_does_not_exist_is_named_with_the_models_there(tmp_path, monkeypatch):
    from distillery.data.inputs import load_record

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DistilleryError, match=r"^models/students/kd/seed_7: no such model folder; no model is saved "
                                              r"under models/ here \(`make repro` trains them\)$"):
        load_record(Path("models/students/kd/seed_7"))
    for seed in (1, 0):
        (tmp_path / f"models/students/kd/seed_{seed}").mkdir(parents=True)
        (tmp_path / f"models/students/kd/seed_{seed}/inputs.json").write_text("{}")
    with pytest.raises(DistilleryError, match=r"seed_7: no such model folder; the models saved here: "
                                              r"models/students/kd/seed_0, models/students/kd/seed_1$"):
        load_record(Path("models/students/kd/seed_7"))
