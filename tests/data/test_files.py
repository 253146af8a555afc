"""Labels of a source file as class indices (``data.files``): indices as they are, names by their place in
``data.label_names`` (numbers too, compared as text), decided over every split at once."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from distillery.data.prepare import prepare
from distillery.errors import DistilleryError

from ..conftest import make_params


def wines(grades) -> pd.DataFrame:
    """60 rows, a numeric feature and the grade of each row, taken in turn from ``grades``."""
    i = np.arange(60)
    return pd.DataFrame({"alcohol": 12 + (i % 7) * 0.3, "grade": np.asarray(grades)[i % len(grades)]})


def prepared(tmp_path, **data):
    return prepare(make_params(data={"source": "file:w.csv", "feature_columns": "all", "label_column": "grade",
                                     "scaling": "none", **data})["data"], tmp_path / "out", tmp_path)


@pytest.mark.parametrize("names", [[5, 6, 7], ["5", "6", "7"]])
def test_numbers_that_are_no_class_index_are_read_as_label_names(tmp_path, names):
    wines([5, 6, 7]).to_csv(tmp_path / "w.csv", index=False)
    result = prepared(tmp_path, label_names=names)
    assert result.label_names == ["5", "6", "7"]
    for split in result.splits.values():  # row i has grade 5 + i % 3: class index i % 3
        assert split.labels.tolist() == (split.ids % 3).tolist()


def test_labels_within_0_to_k_minus_1_stay_indices(tmp_path):
    wines([2, 0, 1]).to_csv(tmp_path / "w.csv", index=False)
    result = prepared(tmp_path, label_names=[1, 2, 0])  # every label is an index and a name: the index wins
    for split in result.splits.values():
        assert split.labels.tolist() == np.array([2, 0, 1])[split.ids % 3].tolist()


def test_labels_are_read_one_way_in_every_split(tmp_path):
    df = wines([1, 2, 3])
    df.iloc[:40].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[40:].to_csv(tmp_path / "test.csv", index=False)  # train alone, 1 and 2, would read as indices
    result = prepared(tmp_path, source="files", files={"train": "train.csv", "test": "test.csv"},
                      label_names=[1, 2, 3])
    assert result.label_names == ["1", "2", "3"]
    for split in result.splits.values():
        assert split.labels.tolist() == (split.ids % 3).tolist()


def test_numbers_neither_indices_nor_names_are_refused_naming_both_readings(tmp_path):
    wines([0, 1, 2, 3]).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DistilleryError, match=re.escape(
            "w.csv: column 'grade' has 15 labels outside 0..2: lines [5, 9, 13, 17, 21] and 10 more have [3, 3, 3, 3, "
            "3]; nor are they all names in data.label_names [1, 2, 3] (labels are read as names when every one is a "
            "name): lines [2, 6, 10, 14, 18] and 10 more have [0, 0, 0, 0, 0]")):
        prepared(tmp_path, label_names=[1, 2, 3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.csv"]


def test_integer_labels_without_names_that_leave_an_index_unused_are_refused_with_the_names(tmp_path):
    wines([1, 2, 3]).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DistilleryError) as error:
        prepared(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'w.csv'}: column 'grade' holds the labels [1, 2, 3] and none of [0]: without data.label_names "
        "labels are class indices 0..3, and a class without rows is an output that no row teaches; name the classes "
        "by these values with data.label_names: [1, 2, 3] (or number the labels from 0)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.csv"]
    wines([0, 1, 2]).to_csv(tmp_path / "w.csv", index=False)
    assert prepared(tmp_path).label_names == ["0", "1", "2"]


def test_a_json_array_is_read_as_rows_and_a_bad_json_line_is_named(tmp_path):
    """A `json.dump` of a list of dicts was read as JSON Lines: a 2,783-character error listing the columns '0'..'399';
    a malformed line was reported by its character position in the file."""
    import gzip
    import json

    from distillery.data.files import read_table

    rows = [{"id": i, "text": f"review {i}", "label": i % 2} for i in range(4)]
    (tmp_path / "rows.json").write_text(json.dumps(rows, indent=1))
    with gzip.open(tmp_path / "rows.jsonl.gz", "wt") as file:
        file.write("\n".join(map(json.dumps, rows)) + "\n")
    for name in ("rows.json", "rows.jsonl.gz"):
        table = read_table(tmp_path / name)
        assert table.to_dict("records") == rows and table["id"].dtype == np.int64
    (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + '\n{"id": 1, "text": "x"\n')
    with pytest.raises(DistilleryError, match=r"bad.jsonl: line 2 is not JSON \(Expecting ',' delimiter\)"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text(json.dumps(rows[0]) + "\n[1, 2]\n")
    with pytest.raises(DistilleryError, match=r"list.jsonl: line 2 is not a JSON object"):
        read_table(tmp_path / "list.jsonl")
    (tmp_path / "numbers.json").write_text("[1, 2, 3]")
    with pytest.raises(DistilleryError, match=r"numbers.json: a JSON array must hold one object per row"):
        read_table(tmp_path / "numbers.json")
