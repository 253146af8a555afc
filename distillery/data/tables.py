"""Numeric tables for ``prepare``: ``file:<path>`` and ``files`` sources with ``data.feature_columns``.

Each row of a CSV/TSV/JSON Lines/Parquet file is one example: its feature columns (a list, or ``all``:
every column but ``data.label_column`` and ``id``) make its input vector, ``data.label_column`` its label
(indices or ``data.label_names``, as for text). Files are split as text files are
(``data.files.labelled_splits``) and ids are positions in the source, train rows first. Columns that hold
text are categorical: refused, or with ``data.categorical: onehot`` one-hot encoded after the numeric
columns, with the categories seen in train (others encode as all zeros).

Every value is checked before anything is split or trained. Messages name the file, the column and the
rows: lines of a CSV/TSV (the header is line 1) or JSON Lines file, 0-based rows of a Parquet file.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from .prepared import Split
from .files import labelled_splits, load_tables, missing_column_problems, row_names
from .validation import _few, _listed, refuse

logger = logging.getLogger(__name__)

ID_COLUMN = "id"
# A categorical column with more categories than this share of the train rows is taken for an id, a date or free
# text: its average category has fewer than two train rows, so it teaches nothing that carries to other rows.
MAX_CATEGORIES_PER_TRAIN_ROW = 0.5


def feature_columns(df, data_params: dict, where: str) -> list[str]:
    """``data.feature_columns`` resolved on ``df`` (``all``: every column but the label and ids)."""
    label = data_params["label_column"]
    columns = data_params["feature_columns"]
    if columns != "all":
        return list(columns)
    columns = [str(c) for c in df.columns if c not in (label, ID_COLUMN, data_params["id_column"])]
    if not columns:
        raise DistilleryError(f"{where}: data.feature_columns = 'all' but the file has no column besides "
                              f"the label {label!r} and {ID_COLUMN!r}")
    return columns


def column_problems(tables: dict, where: dict, data_params: dict, columns: list[str]) -> list[str]:
    """What is wrong with the columns the params name, one line each: a feature column that is the label or an id
    column, then each table's missing feature, label and id columns (``missing_column_problems``: with the near
    name meant)."""
    label, id_column = data_params["label_column"], data_params["id_column"]
    listed = f"data.feature_columns = {columns!r}"
    problems = []
    if label in columns:
        problems.append(f"{listed} holds the label column {label!r} (data.label_column)")
    if id_column is not None and id_column in columns:
        problems.append(f"{listed} holds the id column {id_column!r} (data.id_column)")
    if ID_COLUMN in columns:
        problems.append(f"{listed}: the column {ID_COLUMN!r} names the rows, it is no feature")
    named = {**{c: "data.feature_columns" for c in columns}, label: "data.label_column",
             **({id_column: "data.id_column"} if id_column else {})}
    return problems + missing_column_problems(tables, where, named)


def parse_numbers(values) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 (missing cells NaN, ``True``/``False`` 1/0, text parsed with ``float``) and a mask of
    the cells that hold something that is not a number."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):  # booleans too
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), bool)
    numbers, failed = np.full(len(values), np.nan), np.zeros(len(values), bool)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        if pd.isna(value):
            continue
        try:
            numbers[i] = float(value)
        except (TypeError, ValueError):
            failed[i] = True
    return numbers, failed


def column_kinds(df, columns: list[str], categorical: str, where: str) -> tuple[dict[str, str], list[str]]:
    """Column -> ``numeric`` or ``categorical`` (no cell of it is a number), decided on the train table, and the
    problem with them if any: categorical columns are refused unless ``data.categorical`` is ``onehot``."""
    kinds, examples = {}, {}
    for column in columns:
        present = df[column].notna().to_numpy()
        _, failed = parse_numbers(df[column])
        kinds[column] = "categorical" if present.any() and failed[present].all() else "numeric"
        if kinds[column] == "categorical":
            examples[column] = df[column][present].iloc[0]
    if examples and categorical == "refuse":
        return kinds, [f"{where}: column(s) {list(examples)} hold text, not numbers (e.g. {examples}); one-hot "
                       "encode them with data.categorical: onehot, or leave them out of data.feature_columns"]
    return kinds, []


def value_problems(df, kinds: dict[str, str], where: str, rows: tuple[str, np.ndarray], constant: bool) -> list[str]:
    """What is wrong with the feature cells of ``df``, one line per column: each cell present and finite, numeric
    columns numbers only; with ``constant`` (the train table) no column may hold one value in every row."""
    which, names = rows
    problems = []
    for column, kind in kinds.items():
        values = df[column]
        missing = values.isna().to_numpy()
        if missing.all():
            problems.append(f"{where}: column '{column}' is empty: all {len(df)} values are missing")
            continue
        if kind == "numeric":
            numbers, failed = parse_numbers(values)
            bad = np.flatnonzero(failed)
            if bad.size:
                problems.append(f"{where}: column '{column}' has {bad.size} non-numeric values: {which} "
                                f"{_listed(names[bad])} have {_few(values.to_numpy()[bad])}")
                continue
            bad = np.flatnonzero(~np.isfinite(numbers))
            if bad.size:
                problems.append(f"{where}: column '{column}' has {bad.size} missing, NaN or infinite values: "
                                f"{which} {_listed(names[bad])} have {_few(numbers[bad])}")
                continue
            distinct = np.unique(numbers)
        else:
            bad = np.flatnonzero(missing)
            if bad.size:
                problems.append(f"{where}: column '{column}' has {bad.size} missing values: {which} "
                                f"{_listed(names[bad])}")
                continue
            distinct = values.astype(str).unique()
        if constant and len(distinct) == 1:
            problems.append(f"{where}: column '{column}' is constant (every row has {_few(distinct)[0]!r}), so it "
                            "cannot tell the classes apart; leave it out of data.feature_columns")
    return problems


def check_values(df, kinds: dict[str, str], where: str, rows: tuple[str, np.ndarray], constant: bool) -> None:
    """``value_problems`` as one error naming every problem, if any."""
    refuse(value_problems(df, kinds, where, rows, constant))


def encoded_features(df, numeric: list[str], categorical: list[str], encoder) -> np.ndarray:
    """The feature matrix (float64): the ``numeric`` columns as numbers, then the ``categorical`` ones one-hot by
    ``encoder`` (fitted on train; None without categorical columns); what prepare stores and predict rebuilds."""
    blocks = [np.column_stack([parse_numbers(df[c])[0] for c in numeric])] if numeric else []
    if encoder is not None:
        blocks.append(encoder.transform(df[categorical].astype(str)))
    return np.hstack(blocks)


def too_many_categories(parts: dict, categorical: list[str], where: str) -> dict[str, dict]:
    """The categorical columns whose categories outnumber ``MAX_CATEGORIES_PER_TRAIN_ROW`` of the train rows, each
    with its categories, the train rows and, per other split, its rows of a value train never saw (one-hot: all
    zeros); logged as a warning. ``{}`` when there is none."""
    train = parts["train"]
    found = {}
    for column in categorical:
        seen = set(train[column].astype(str))
        if len(seen) <= MAX_CATEGORIES_PER_TRAIN_ROW * len(train):
            continue
        unseen = {split: int((~df[column].astype(str).isin(seen)).sum()) for split, df in parts.items()
                  if split != "train"}
        found[column] = {"categories": len(seen), "train_rows": len(train), "unseen_rows": unseen}
        logger.warning("%s: column '%s' has %d categories in %d train rows (more than half as many): one-hot encoding "
                       "(data.categorical) gives each a feature of its own, and %s hold a value train never saw, all "
                       "zeros, as most new rows will: an id, a date or free text is no category; leave it out of "
                       "data.feature_columns", where, column, len(seen), len(train),
                       " and ".join(f"{n} of the {len(parts[split])} {split} rows" for split, n in unseen.items()))
    return found


def table_splits(data_params: dict, root: Path) -> tuple[dict[str, Split], list[str], dict]:
    """Load, check, split and encode a numeric table source: (split -> ``Split`` with float64 features,
    label names, meta for meta.json). Scaling is ``prepare``'s next step."""
    from sklearn.preprocessing import OneHotEncoder

    tables, where, _ = load_tables(data_params, root)
    label = data_params["label_column"]
    columns = feature_columns(tables["train"], data_params, where["train"])
    refuse(column_problems(tables, where, data_params, columns))
    kinds, problems = column_kinds(tables["train"], columns, data_params["categorical"], where["train"])
    rows = {}
    id_column = data_params["id_column"]
    for split, df in tables.items():
        rows[split] = (id_column, df[id_column].to_numpy()) if id_column in df.columns else row_names(df, where[split])
        problems += value_problems(df, kinds, where[split], rows[split], constant=split == "train")
    # the labels and ids are checked with them, so that one run names every problem of the file
    parts, label_names, origin, hidden = labelled_splits(tables, where, data_params, problems=problems)

    numeric = [c for c in columns if kinds[c] == "numeric"]
    text = [c for c in columns if kinds[c] == "categorical"]
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(parts["train"][text].astype(str)) \
        if text else None
    splits = {}
    for split, df in parts.items():
        splits[split] = Split(df["id"].to_numpy(np.int64, copy=True), encoded_features(df, numeric, text, encoder),
                              df[label].to_numpy(np.int64, copy=True))  # copies: pandas' arrays are read-only
    meta = {
        "kind": "table",
        "source": data_params["source"],
        "split_origin": origin,
        "hidden_test_labels": hidden,
        "feature_columns": columns,
        "features": numeric + ([] if encoder is None else [str(f) for f in encoder.get_feature_names_out()]),
        "inputs": {"kind": "table", "id_column": id_column},
    }
    if encoder is not None:
        meta["categories"] = {c: [str(v) for v in cats] for c, cats in zip(text, encoder.categories_)}
    if crowded := too_many_categories(parts, text, where["train"]):
        meta["too_many_categories"] = crowded
    return splits, label_names, meta
