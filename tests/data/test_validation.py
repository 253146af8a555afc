"""Bad data: one test per case, each error naming the file, the column and the first offending ids/rows."""
import re

import numpy as np
import pandas as pd
import pytest

from distillery.data.prepare import prepare
from distillery.errors import DistilleryError
from distillery.data.validation import _listed, check_stratifiable, labels_are_names, table_problems, validate_arrays

from ..conftest import make_params

NAMES = ["neg", "pos"]


def table(**changes) -> pd.DataFrame:
    df = pd.DataFrame({"id": [10, 11, 12, 13], "text": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]})
    for column, values in changes.items():
        df[column] = values
    return df


@pytest.mark.parametrize(
    "df, message",
    [
        (table().drop(columns="text"), "reviews.csv: missing column(s) ['text']; the file has columns ['id', 'label']"),
        (table().drop(columns="label"), "missing column(s) ['label']; the file has columns ['id', 'text']"),
        (table().iloc[:0], "reviews.csv: no rows"),
        (table(text=["good", None, "fine", "awful"]), "column 'text' has 1 empty or NaN inputs: ids [11]"),
        (table(text=["good", "  ", "", "awful"]), "column 'text' has 2 empty or NaN inputs: ids [11, 12]"),
        (table(id=[10, 11, 10, 11]), "column 'id' has 2 duplicate ids: [10, 11]"),
        (table(label=[1, 0, 2, 0]), "column 'label' has 1 labels outside 0..1: ids [12] have [2]"),
        (table(label=[1, -1, 1, 0]), "column 'label' has 1 labels outside 0..1: ids [11] have [-1]"),
        (table(label=[1.0, 0.5, 1.0, 0.0]), "column 'label' has 1 labels that are not integers: ids [11] have [0.5]"),
        (table(label=[1, None, 1, 0]), "column 'label' has 1 missing labels: ids [11]"),
        (table(label=["pos", "neg", "meh", "neg"]), "labels outside the label set ['neg', 'pos']: ids [12] have ['meh']"),
        (table().drop(columns="id").assign(text=["a", "", "c", "d"]), "empty or NaN inputs: rows [1]"),
    ],
)
def test_bad_table_is_named(df, message):
    assert [p for p in table_problems(df, ["text"], "label", "reviews.csv", NAMES) if message in p]


def test_good_table_passes_with_names_or_indices():
    assert table_problems(table(), ["text"], "label", "reviews.csv", NAMES) == []
    assert table_problems(table(label=["pos", "neg", "pos", "neg"]), ["text"], "label", "reviews.csv", NAMES) == []


def test_every_problem_of_a_table_is_named_at_once():
    bad = table(id=[10, 11, 10, 13], text=["good", "", "fine", "awful"], label=["pos", None, "meh", "neg"])
    assert table_problems(bad, ["text"], "label", "reviews.csv", NAMES) == [
        "reviews.csv: column 'id' has 1 duplicate ids: [10]",
        "reviews.csv: column 'text' has 1 empty or NaN inputs: ids [11]",
        "reviews.csv: column 'label' has 1 missing labels: ids [11]",
        "reviews.csv: column 'label' has 1 labels outside the label set ['neg', 'pos']: ids [10] have ['meh']"]


@pytest.mark.parametrize(
    "ids, inputs, labels, message",
    [
        ([0, 1], [[0.0], [np.nan]], [0, 1], "1 rows have NaN/inf inputs: ids [1]"),
        ([0, 1], [[0.0], [np.inf]], [0, 1], "1 rows have NaN/inf inputs: ids [1]"),
        ([0, 1], [[0.0], [1.0]], [0, 5], "1 labels outside the label set 0..1: ids [1] have [5]"),
        ([0, 1], [[0.0], [1.0]], [0.0, 1.5], "column 'label' has 1 labels that are not integers: ids [1] have [1.5]"),
        ([0, 1], [[0.0], [1.0]], ["b", "a"], "column 'label' must hold integer class indices, got dtype <U1 (first "
                                             "values ['b', 'a']): class names need data.label_names, the classes in "
                                             "index order (e.g. data.label_names: [a, b])"),
        ([7, 7], [[0.0], [1.0]], [0, 1], "column 'id' has 1 duplicate ids: [7]"),
        ([0, 1], [[0.0]], [0, 1], "inputs and labels differ in length"),
        ([], np.zeros((0, 1)), [], "data.npz: no rows"),
    ],
)
def test_bad_arrays_are_named(ids, inputs, labels, message):
    with pytest.raises(DistilleryError, match=re.escape(message)):
        validate_arrays(np.array(ids), np.array(inputs), np.array(labels), NAMES, "data.npz")


def test_split_too_small_for_stratification_names_classes():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    with pytest.raises(DistilleryError, match=re.escape("classes {'c': 1} have fewer than 2 rows")):
        check_stratifiable(labels, 0.5, "test", "data.npz", ["a", "b", "c"])
    pairs = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(DistilleryError, match="6 rows are too few for a stratified test split of fraction 0.2"):
        check_stratifiable(pairs, 0.2, "test", "data.npz", ["a", "b", "c"])  # 2 test rows for 3 classes
    check_stratifiable(pairs, 0.5, "test", "data.npz", ["a", "b", "c"])


def write_npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=np.asarray(x_train), y_train=np.asarray(y_train), x_test=np.asarray(x_test),
             y_test=np.asarray(y_test))


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 255, size=(n, 4, 4), dtype=np.uint8)


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty_test", "empty split(s) ['x_test']"),
        ("float_labels", "array y_train/y_test has 1 labels that are not integers: ids [3] have [1.5]"),
        ("nan_inputs", "1 rows have NaN/inf inputs: ids [2]"),
        ("tiny", "too few rows to split off a stratified validation split: classes {'1': 1}"),
        ("length", "x_train has 40 rows but y_train has 39"),
        ("missing", "missing arrays ['y_test']; it has ['x_test', 'x_train', 'y_train']"),
        ("one_hot", "y_train must hold one class per row, of shape (N,) or (N, 1); it has shape [40, 2]"),
        ("from_one", "array y_train/y_test holds the labels [1, 2] and none of [0]"),
    ],
)
def test_bad_npz_source_stops_prepare_without_output(tmp_path, case, message):
    y = np.arange(40) % 2
    x_test, y_test = images(10, 1), np.arange(10) % 2
    path = tmp_path / "d.npz"
    if case == "empty_test":
        write_npz(path, images(40), y, images(0), y[:0])
    elif case == "float_labels":
        write_npz(path, images(40), np.where(np.arange(40) == 3, 1.5, y), x_test, y_test)
    elif case == "nan_inputs":
        x = images(40).astype(np.float32)
        x[2, 0, 0] = np.nan
        write_npz(path, x, y, x_test.astype(np.float32), y_test)
    elif case == "tiny":
        write_npz(path, images(3), [0, 0, 1], x_test, y_test)
    elif case == "length":
        write_npz(path, images(40), y[:39], x_test, y_test)
    elif case == "one_hot":
        write_npz(path, images(40), np.eye(2, dtype=np.int64)[y], x_test, y_test)
    elif case == "from_one":
        write_npz(path, images(40), y + 1, x_test, y_test + 1)
    else:
        np.savez(path, x_train=images(40), y_train=y, x_test=x_test)
    params = make_params(data={"source": "npz:d.npz"})
    out = tmp_path / "prepared"
    with pytest.raises(DistilleryError, match=re.escape(message)) as error:
        prepare(params["data"], out, root=tmp_path)
    assert "d.npz" in str(error.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_npz_with_pickled_objects_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=[0], x_test=[0], y_test=[0])
    params = make_params(data={"source": "npz:d.npz"})
    with pytest.raises(DistilleryError, match="allow_pickle=False"):
        prepare(params["data"], tmp_path / "prepared", root=tmp_path)


@pytest.mark.parametrize(
    "labels, names, by_name",
    [
        ([1, 2, 3], [1, 2, 3], True),  # 3 is no index 0..2: grades named by value
        ([5.0, 6.0, 7.0], ["5", "6", "7"], True),  # compared as text, 5.0 as 5
        ([0, 1, 2], [1, 2, 0], False),  # all within 0..2: indices, though each is a name too
        ([0, 3], [1, 2, 3], False),  # 0 is no name: neither reading, the indices' check names the rows
        (["b", "a"], ["a", "b"], True),
        ([1, 2, 3], None, False),
    ],
)
def test_labels_are_names_when_some_is_no_index_and_every_one_a_name(labels, names, by_name):
    assert labels_are_names(pd.Series(labels), names) is by_name


def test_a_list_cut_short_says_how_many_more_there_are():
    assert _listed(np.arange(5)) == "[0, 1, 2, 3, 4]"
    assert _listed(np.arange(1181)) == "[0, 1, 2, 3, 4] and 1,176 more"
