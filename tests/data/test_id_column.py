"""data.id_column: a user's own id column (e.g. ``ticket_id``) is the row id end to end; without it, messages
name rows by their line in the file, never by internal row numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distillery.data.files import integer_cells
from distillery.errors import DistilleryError
from distillery.params import SCHEMA
from distillery.data.prepared import load_prepared
from distillery.schema import validate_block
from distillery.data.text import prepare_text
from distillery.data.transfer import build_transfer

from ..text_utils import sentences


def data(**extra) -> dict:
    return validate_block({"source": "file:tickets.csv", "text_column": "sentence", "validation_fraction": 0.2,
                           "test_fraction": 0.2, **extra}, SCHEMA["data"], "data", "test")


def tickets(n=60):
    df = sentences(n)
    df.insert(0, "ticket_id", 5000 + 7 * np.arange(n))
    return df


def test_own_ids_are_the_row_ids_and_transfer_ids_go_above_them(tmp_path):
    tickets().to_csv(tmp_path / "tickets.csv", index=False)
    prepare_text(data(id_column="ticket_id", max_train_examples=20), tmp_path / "prepared", tmp_path)
    prepared = load_prepared(tmp_path / "prepared")
    ids = np.concatenate([s.ids for s in prepared.splits.values()])
    assert set(ids) <= set(5000 + 7 * np.arange(60)) and len(set(ids)) == len(ids) == 60 - 18  # 18: the rest
    text = dict(zip(tickets()["ticket_id"], tickets()["sentence"]))
    train = prepared.splits["train"]
    assert all(text[i] == t for i, t in zip(train.ids, train.dataset["text"]))  # each id keeps its own text
    transfer = build_transfer(data(id_column="ticket_id", max_train_examples=20, transfer={"rest": True, "augment": 1}),
                              prepared, tmp_path)
    rest = transfer.origins == 0
    assert set(transfer.ids[rest]) <= set(text) and transfer.ids[~rest].min() == 5000 + 7 * 59 + 1


@pytest.mark.parametrize("edit, extra, message", [
    (lambda df: df.assign(sentence=df["sentence"].where(df.index != 7, " ")), {"id_column": "ticket_id"},
     "column 'sentence' has 1 empty or NaN inputs: ticket_id [5049]"),
    (lambda df: df.assign(sentence=df["sentence"].where(df.index != 7, " ")), {},
     "column 'sentence' has 1 empty or NaN inputs: lines [9]"),
    (lambda df: df, {"id_column": "id"},
     "missing column(s) 'id' (data.id_column); the file has columns ['ticket_id', 'sentence', 'label']"),
    (lambda df: df, {"id_column": "Ticket_ID"}, "missing column(s) 'Ticket_ID' (data.id_column); the file has columns "
                                                "['ticket_id', 'sentence', 'label']; did you mean 'ticket_id'?"),
    (lambda df: df.assign(ticket_id=df["ticket_id"].astype(str).where(df.index != 4, "T-4")),
     {"id_column": "ticket_id"}, "data.id_column = 'ticket_id' must hold integers of 64 bits (they key the "
                                 "logits and predictions): no such integer in 1 of the 60 rows: lines [6] have ['T-4']; leave "
                                 "data.id_column out to number the rows by position, or map the ids to integers"),
    (lambda df: df.assign(ticket_id=df["ticket_id"].where(df.index != 4, 5000)), {"id_column": "ticket_id"},
     "data.id_column = 'ticket_id': 1 ids appear more than once (over every split): [5000] ("),
    (lambda df: df.rename(columns={"label": "y"}), {"id_column": "ticket_id"},
     "missing column(s) 'label' (data.label_column); the file has columns ['ticket_id', 'sentence', 'y']"),
])
def test_messages_name_the_users_ids_or_lines(tmp_path, edit, extra, message):
    edit(tickets()).to_csv(tmp_path / "tickets.csv", index=False)
    with pytest.raises(DistilleryError) as info:
        prepare_text(data(**extra), tmp_path / "prepared", tmp_path)
    assert message in str(info.value)
    assert "appear more than once" not in message or str(info.value).endswith("tickets.csv lines [2, 6])")
    assert not (tmp_path / "prepared").exists()


def test_every_problem_of_a_text_file_is_named_in_one_run(tmp_path):
    df = tickets()
    df["label"] = df["label"].map({0: "neg", 1: "pos"})
    df.loc[4, "ticket_id"] = 5000  # line 6 repeats line 2's id
    df.loc[7, "sentence"] = " "
    df.loc[9, "label"] = None
    df.loc[11, "label"] = "meh"
    df.to_csv(tmp_path / "tickets.csv", index=False)
    with pytest.raises(DistilleryError) as info:
        prepare_text(data(id_column="ticket_id", label_names=["neg", "pos"]), tmp_path / "prepared", tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0] == "4 problems with the data:"
    assert lines[1].strip().startswith("data.id_column = 'ticket_id': 1 ids appear more than once (over every "
                                       "split): [5000] (") and lines[1].endswith("tickets.csv lines [2, 6])")
    assert lines[2].endswith("tickets.csv: column 'sentence' has 1 empty or NaN inputs: ticket_id [5049]")
    assert lines[3].endswith("tickets.csv: column 'label' has 1 missing labels: ticket_id [5063]")
    assert lines[4].endswith("tickets.csv: column 'label' has 1 labels outside the label set ['neg', 'pos']: "
                             "ticket_id [5077] have ['meh']")
    assert not (tmp_path / "prepared").exists()


def test_a_repeated_id_is_named_once_and_an_id_column_left_unused_is_not_checked(tmp_path):
    """data.id_column: id named its repeated id twice, in two wordings; without data.id_column a column called id is
    no id (rows are numbered by position), and its repeats were refused all the same."""
    df = tickets().rename(columns={"ticket_id": "id"})
    df.loc[4, "id"] = 5000
    df.to_csv(tmp_path / "tickets.csv", index=False)
    with pytest.raises(DistilleryError) as info:
        prepare_text(data(id_column="id"), tmp_path / "prepared", tmp_path)
    assert str(info.value).count("5000") == 1 and "duplicate ids" not in str(info.value)
    prepare_text(data(), tmp_path / "prepared", tmp_path)
    assert sorted(np.concatenate([s.ids for s in load_prepared(tmp_path / "prepared").splits.values()])) == \
        list(range(60))


def test_ids_beyond_int64_are_refused_not_wrapped(tmp_path):
    """A hash id of 2**63 used to become -2**63 in prepare and predict, and ids above 2**64 all one value."""
    df = tickets().astype({"ticket_id": object})
    df.loc[4, "ticket_id"] = 2 ** 63
    df.loc[5, "ticket_id"] = 2 ** 63 - 1  # the largest int64: kept
    df.to_csv(tmp_path / "tickets.csv", index=False)
    with pytest.raises(DistilleryError, match=r"lines \[6\] have \[9223372036854775808\]"):
        prepare_text(data(id_column="ticket_id"), tmp_path / "prepared", tmp_path)


@pytest.mark.parametrize("cells, ids, bad", [
    (pd.Series([1, 2, 2 ** 63 - 1]), [1, 2, 2 ** 63 - 1], []),
    (pd.Series([2 ** 63 - 1, 2 ** 63], dtype=np.uint64), [2 ** 63 - 1, 0], [1]),
    (pd.Series([str(2 ** 64 + 1), "1"]), [0, 1], [0]),  # read as a float: beyond float's exact integers
    (pd.Series([2.0 ** 53, 2.0 ** 53 + 2, None]), [2 ** 53, 0, 0], [1, 2]),
    (pd.Series([1, None, 2 ** 62], dtype="Int64"), [1, 0, 2 ** 62], [1]),  # nullable integers keep every digit
    (pd.Series(["W-1", "2", "2.5"]), [0, 2, 0], [0, 2]),
])
def test_integer_cells_are_int64_exactly_or_named(cells, ids, bad):
    got_ids, got_bad = integer_cells(cells)
    assert got_ids.dtype == np.int64 and got_ids.tolist() == ids and got_bad.tolist() == bad


def test_text_ids_and_repeated_ids_are_counted_with_what_to_do(tmp_path):
    tickets().assign(ticket_id=[f"T-{i:04d}" for i in range(60)]).to_csv(tmp_path / "tickets.csv", index=False)
    with pytest.raises(DistilleryError) as info:
        prepare_text(data(id_column="ticket_id"), tmp_path / "prepared", tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'tickets.csv'}: data.id_column = 'ticket_id' must hold integers of 64 bits (they key the logits "
        "and predictions): no such integer in 60 of the 60 rows: lines [2, 3, 4, 5, 6] and 55 more have ['T-0000', 'T-0001', "
        "'T-0002', 'T-0003', 'T-0004']; leave data.id_column out to number the rows by position, or map the ids to "
        "integers")
    repeated = tickets()
    repeated.loc[10:15, "ticket_id"] = repeated["ticket_id"].iloc[:6].to_numpy()  # 6 ids twice: lines 2-7, 12-17
    repeated.to_csv(tmp_path / "tickets.csv", index=False)
    with pytest.raises(DistilleryError) as info:
        prepare_text(data(id_column="ticket_id"), tmp_path / "prepared", tmp_path)
    assert str(info.value) == ("data.id_column = 'ticket_id': 6 ids appear more than once (over every split): "
                               "[5000, 5007, 5014, 5021, 5028] and 1 more "
                               f"({tmp_path / 'tickets.csv'} lines [2, 3, 4, 5, 6] and 7 more)")
