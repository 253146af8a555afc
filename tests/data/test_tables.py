"""Numeric tables as a source: every file format, one file or one per split, one-hot categories, and bad
values refused before anything is split or written, naming the file, the column and the lines."""
from __future__ import annotations

import re
import runpy

import numpy as np
import pandas as pd
import pytest
import yaml

from distillery.data.prepare import prepare
from distillery.errors import DistilleryError
from distillery.data.prepared import load_prepared

from ..conftest import REPO, make_params


def table(n: int = 60) -> pd.DataFrame:
    """``n`` rows: two numeric features, an id column (no feature) and a two-class label named by text."""
    i = np.arange(n)
    return pd.DataFrame({"id": 100 + i, "size": (i % 7) * 1.5, "weight": 1000.0 * (i % 5) + i,
                         "kind": np.where(i % 2, "pear", "apple")})


def params(**data):
    return make_params(data={"source": "file:t.csv", "feature_columns": "all", "label_column": "kind",
                             "label_names": ["apple", "pear"], **data})


def write(df: pd.DataFrame, path) -> None:
    suffix = path.name.split(".", 1)[1]
    {"csv": lambda: df.to_csv(path, index=False), "tsv": lambda: df.to_csv(path, sep="\t", index=False),
     "jsonl": lambda: df.to_json(path, orient="records", lines=True), "parquet": lambda: df.to_parquet(path)}[suffix]()


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_one_file_is_split_with_the_seed_into_its_feature_columns(tmp_path, suffix):
    df = table()
    write(df, tmp_path / f"t.{suffix}")
    prepared = prepare(params(source=f"file:t.{suffix}", scaling="none")["data"], tmp_path / "out", tmp_path)
    assert prepared.meta["kind"] == "table" and prepared.meta["feature_columns"] == ["size", "weight"]
    assert prepared.input_shape == [2] and prepared.label_names == ["apple", "pear"]
    assert prepared.meta["sizes"] == {"train": 40, "validation": 8, "test": 12}  # 12 = 0.2 · 60, 8 = ⌈0.15 · 48⌉
    assert prepared.meta["scaling"] == {"param": "none", "scaler": "none"}
    again = load_prepared(tmp_path / "out")
    for split in ("train", "validation", "test"):
        rows = again.splits[split].ids  # positions in the file, not its id column
        np.testing.assert_array_equal(again.splits[split].inputs, df[["size", "weight"]].to_numpy(np.float32)[rows])
        assert again.splits[split].labels.tolist() == (rows % 2).tolist()  # apple = 0, pear = 1


def test_listed_columns_and_one_file_per_split(tmp_path):
    df = table(80)
    df.iloc[:60].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[60:].to_csv(tmp_path / "test.csv", index=False)
    data = params(source="files", files={"train": "train.csv", "test": "test.csv"}, feature_columns=["weight"],
                  scaling="none")["data"]
    prepared = prepare(data, tmp_path / "out", tmp_path)
    assert prepared.meta["split_origin"]["test"] == "source test"
    test = prepared.splits["test"]
    assert test.ids.tolist() == list(range(60, 80))
    assert test.inputs[:, 0].tolist() == df["weight"].iloc[60:].tolist()


def test_categorical_columns_are_one_hot_encoded_with_the_train_categories(tmp_path):
    df = table(40).assign(colour=np.where(np.arange(40) % 3 == 0, "red", "blue"))
    df.iloc[:30].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[30:].assign(colour=["green"] + ["red"] * 9).to_csv(tmp_path / "test.csv", index=False)
    data = params(source="files", files={"train": "train.csv", "test": "test.csv"}, categorical="onehot",
                  scaling="none")["data"]
    prepared = prepare(data, tmp_path / "out", tmp_path)
    assert prepared.meta["features"] == ["size", "weight", "colour_blue", "colour_red"]
    assert prepared.meta["categories"] == {"colour": ["blue", "red"]}
    test = prepared.splits["test"]
    # id 30: size (30 % 7) * 1.5 = 3.0, weight 1000 * 0 + 30; 'green' is no train category: all zeros
    assert test.inputs[0].tolist() == [3.0, 30.0, 0.0, 0.0]
    assert test.inputs[1].tolist() == [4.5, 1031.0, 0.0, 1.0]  # id 31, 'red'
    train = prepared.splits["train"]
    assert train.inputs[:, 3].tolist() == (train.ids % 3 == 0).astype(float).tolist()


def test_a_one_hot_column_with_about_a_category_per_train_row_is_warned_about_and_recorded(tmp_path, caplog):
    import logging

    df = table().assign(colour=np.where(np.arange(60) % 3 == 0, "red", "blue"),
                        note=[f"picked on day {i}" for i in range(60)])  # free text: a category per row
    df.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level(logging.WARNING):
        prepared = prepare(params(categorical="onehot")["data"], tmp_path / "out", tmp_path)
    assert prepared.input_shape == [2 + 2 + 40]  # the note: a feature per train row
    assert ("t.csv: column 'note' has 40 categories in 40 train rows (more than half as many): one-hot encoding "
            "(data.categorical) gives each a feature of its own, and 8 of the 8 validation rows and 12 of the 12 test "
            "rows hold a value train never saw, all zeros, as most new rows will: an id, a date or free text is no "
            "category; leave it out of data.feature_columns") in caplog.text
    assert "column 'colour'" not in caplog.text
    assert load_prepared(tmp_path / "out").meta["too_many_categories"] == {
        "note": {"categories": 40, "train_rows": 40, "unseen_rows": {"validation": 8, "test": 12}}}


@pytest.mark.parametrize("categories, warned", [(5, False), (6, True)])
def test_more_categories_than_half_the_train_rows_are_too_many(categories, warned):
    from distillery.data.tables import too_many_categories

    train = pd.DataFrame({"grape": [f"g{i % categories}" for i in range(10)]})  # 10 train rows
    parts = {"train": train, "validation": train.head(2), "test": pd.DataFrame({"grape": ["other"]})}
    found = too_many_categories(parts, ["grape"], "t.csv")
    assert found == ({"grape": {"categories": 6, "train_rows": 10, "unseen_rows": {"validation": 0, "test": 1}}}
                     if warned else {})


def corrupt(case: str) -> tuple[pd.DataFrame, dict]:
    """The table with one kind of bad input, and the params that read it."""
    df = table().astype({"size": object})
    extra = {}
    if case == "text_value":
        df.loc[3, "size"], df.loc[8, "size"] = "oops", "n/a"
    elif case == "constant":
        df["size"] = 2.5
    elif case == "empty":
        df["size"] = np.nan
    elif case == "nan":
        df.loc[[4, 9], "size"] = np.nan
    elif case == "inf":
        df.loc[5, "size"] = "inf"
    elif case == "unknown_column":
        extra = {"feature_columns": ["size", "height"]}
    elif case == "categorical":
        df["colour"], df["shape"] = "red", np.where(df.index % 2, "round", "square")
    return df, extra


@pytest.mark.parametrize(
    "case, message",
    [
        ("text_value", "t.csv: column 'size' has 2 non-numeric values: lines [5, 10] have ['oops', 'n/a']"),
        ("constant", "t.csv: column 'size' is constant (every row has 2.5)"),
        ("empty", "t.csv: column 'size' is empty: all 60 values are missing"),
        ("nan", "t.csv: column 'size' has 2 missing, NaN or infinite values: lines [6, 11] have [nan, nan]"),
        ("inf", "t.csv: column 'size' has 1 missing, NaN or infinite values: lines [7] have [inf]"),
        ("unknown_column", "t.csv: missing column(s) 'height' (data.feature_columns); the file has columns ['id', "
                           "'size', 'weight', 'kind']; did you mean 'weight'?"),
        ("categorical", "t.csv: column(s) ['colour', 'shape'] hold text, not numbers (e.g. {'colour': 'red', "
                        "'shape': 'square'}); one-hot encode them with data.categorical: onehot"),
    ],
)
def test_bad_table_is_refused_naming_file_column_and_lines(tmp_path, case, message):
    df, extra = corrupt(case)
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DistilleryError, match=re.escape(message)):
        prepare(params(**extra)["data"], tmp_path / "out", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_every_problem_of_a_table_is_named_in_one_run(tmp_path):
    df = table()
    df["region"] = np.where(df.index % 3, "north", "south")  # text in a feature column
    df.loc[[4, 9], "size"] = np.nan  # missing values
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DistilleryError) as error:  # and the labels are names, with no data.label_names
        prepare(params(label_names=None)["data"], tmp_path / "out", tmp_path)
    lines = str(error.value).splitlines()
    assert lines[0] == "3 problems with the data:"
    assert "t.csv: column(s) ['region'] hold text, not numbers" in lines[1]
    assert lines[2].endswith("t.csv: column 'size' has 2 missing, NaN or infinite values: lines [6, 11] have "
                             "[nan, nan]")
    assert "t.csv: column 'kind' must hold integer class indices" in lines[3]
    assert lines[3].endswith("data.label_names: [apple, pear])")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_listed_class_without_train_rows_is_warned_about_and_recorded(tmp_path, caplog):
    import logging

    table().to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level(logging.WARNING):
        prepare(params(label_names=["apple", "pear", "quince"])["data"], tmp_path / "out", tmp_path)
    assert "no train row has the class 'quince' (0 validation, 0 test rows): the models get an output for it" in \
        caplog.text
    prepared = load_prepared(tmp_path / "out")
    assert prepared.label_names == ["apple", "pear", "quince"]
    assert prepared.meta["classes_without_train_rows"] == {"quince": {"validation": 0, "test": 0}}


def test_rows_whose_features_train_holds_are_counted_and_warned_about(tmp_path, caplog):
    """A file's duplicated rows (under new ids) fall into every split: validation and test then score memory."""
    df = table(60)
    pd.concat([df, df.iloc[:30].assign(id=df["id"].iloc[:30] + 1000)]).to_csv(tmp_path / "t.csv", index=False)
    prepared = prepare(params(scaling="none")["data"], tmp_path / "out", tmp_path)
    train = {tuple(row) for row in prepared.splits["train"].inputs.tolist()}
    by_hand = {split: sum(tuple(row) in train for row in prepared.splits[split].inputs.tolist())
               for split in ("validation", "test")}
    assert by_hand["validation"] + by_hand["test"] > 0
    assert prepared.meta["inputs_also_in_train"] == by_hand
    assert "the features of " in caplog.text and "also stands in train, value for value" in caplog.text
    df.to_csv(tmp_path / "unique.csv", index=False)
    unique = prepare(params(source="file:unique.csv", scaling="none")["data"], tmp_path / "unique", tmp_path)
    assert "inputs_also_in_train" not in unique.meta


def test_a_class_that_validation_or_test_lacks_is_warned_about_and_recorded(tmp_path, caplog):
    import logging

    df = table()
    df.loc[[0, 2, 4], "kind"] = "quince"  # 3 rows: stratified, test takes 1 and validation's share rounds to none
    df.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level(logging.WARNING):
        prepared = prepare(params(label_names=["apple", "pear", "quince"])["data"], tmp_path / "out", tmp_path)
    assert [int((split.labels == 2).sum()) for split in prepared.splits.values()] == [2, 0, 1]
    assert ("the validation split has no row of the class 'quince', which train has: checkpoint selection and "
            "temperature scaling never see it") in caplog.text
    assert load_prepared(tmp_path / "out").meta["classes_without_validation_or_test_rows"] == {
        "validation": ["quince"]}
    caplog.clear()
    table().to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level(logging.WARNING):
        prepared = prepare(params()["data"], tmp_path / "out", tmp_path)
    assert "classes_without_validation_or_test_rows" not in prepared.meta and caplog.text == ""


def test_every_problem_of_the_named_columns_is_named_in_one_run_with_the_name_meant(tmp_path):
    table().rename(columns={"id": "row"}).to_csv(tmp_path / "t.csv", index=False)
    data = params(feature_columns=["size", "Weight", "kind", "row", "id"], id_column="row")["data"]
    with pytest.raises(DistilleryError) as error:
        prepare(data, tmp_path / "out", tmp_path)
    assert str(error.value).splitlines() == [
        "4 problems with the data:",
        "  data.feature_columns = ['size', 'Weight', 'kind', 'row', 'id'] holds the label column 'kind' "
        "(data.label_column)",
        "  data.feature_columns = ['size', 'Weight', 'kind', 'row', 'id'] holds the id column 'row' (data.id_column)",
        "  data.feature_columns = ['size', 'Weight', 'kind', 'row', 'id']: the column 'id' names the rows, it is no "
        "feature",
        f"  {tmp_path / 't.csv'}: missing column(s) ['Weight', 'id'] (data.feature_columns); the file has "
        "columns ['row', 'size', 'weight', 'kind']; did you mean 'weight' for 'Weight'?"]
    with pytest.raises(DistilleryError, match=re.escape(
            "t.csv: missing column(s) 'Kind' (data.label_column), 'Row' (data.id_column); the file has columns ['row', "
            "'size', 'weight', 'kind']; did you mean 'kind' for 'Kind', 'row' for 'Row'?")):
        prepare(params(label_column="Kind", id_column="Row")["data"], tmp_path / "out", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_parquet_rows_are_named_from_zero_and_labels_by_line(tmp_path):
    table().assign(size=lambda d: d["size"].where(d.index != 7)).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DistilleryError, match=re.escape("t.parquet: column 'size' has 1 missing, NaN or infinite "
                                                        "values: rows [7]")):
        prepare(params(source="file:t.parquet")["data"], tmp_path / "out", tmp_path)
    table().assign(kind=lambda d: d["kind"].where(d.index != 2)).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DistilleryError, match=re.escape("t.csv: column 'kind' has 1 missing labels: lines [4]")):
        prepare(params()["data"], tmp_path / "out", tmp_path)


def test_prepare_stage_refuses_a_bad_table_with_status_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    corrupt("text_value")[0].to_csv(tmp_path / "t.csv", index=False)
    raw = {"data": {"source": "file:t.csv", "feature_columns": "all", "label_column": "kind",
                    "label_names": ["apple", "pear"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "stages" / "prepare.py"), run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: t.csv: column 'size' has 2 non-numeric values: lines [5, 10] "
                                       "have ['oops', 'n/a']\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "t.csv"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"source": "hf:glue:sst2", "feature_columns": "all"}, "numeric tables come from file:<path> or files"),
        ({"feature_columns": "every"}, "data.feature_columns = 'every': must be 'all' or a list of column names"),
        ({"feature_columns": None, "categorical": "onehot"}, "data.categorical = 'onehot' goes with "
                                                             "data.feature_columns"),
    ],
)
def test_table_params_are_checked_together(data, message):
    with pytest.raises(DistilleryError, match=re.escape(message)):
        params(**data)
