"""Checks on loaded data, run by ``prepare`` before any split is saved.

Each check raises ``DistilleryError`` naming the source (file), the column and the first
offending ids (or row numbers when the data has no id column). They take plain arrays or
DataFrames, so every source (arrays from ``.npz``, tables from CSV/Parquet/JSON) uses the same ones.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import DistilleryError

SHOWN = 5  # offending ids/values shown in a message


def _few(values) -> list:
    return np.asarray(values)[:SHOWN].tolist()


def _listed(values) -> str:
    """The first few ``values`` (``_few``) as a message writes them, and how many more there are:
    ``[2, 3, 4, 5, 6] and 176 more``."""
    more = len(values) - SHOWN
    return f"{_few(values)}{f' and {more:,} more' if more > 0 else ''}"


CLOSE_NAME = 0.75  # difflib's ratio from which a column name is taken for a slip of another (params: its 0.6)


def did_you_mean(missing: Sequence[str], columns) -> str:
    """``; did you mean 'hue'?`` for the missing column names that the file's ``columns`` nearly hold (compared in
    lower case with ``difflib``, as unknown params are, a little stricter: a table has many short names), or ``""``."""
    import difflib

    by_case = {str(c).lower(): str(c) for c in columns}
    close = {}
    for name in missing:
        match = difflib.get_close_matches(str(name).lower(), by_case, n=1, cutoff=CLOSE_NAME)
        if match:
            close[name] = by_case[match[0]]
    if not close:
        return ""
    if len(missing) == 1:
        return f"; did you mean {next(iter(close.values()))!r}?"
    return "; did you mean " + ", ".join(f"{match!r} for {name!r}" for name, match in close.items()) + "?"


def integer_labels(labels, ids, source: str, what: str = "column 'label'") -> np.ndarray:
    """``labels`` as int64, or an error if any is missing, fractional or not a number (``what``: where the labels
    are, as the message names them)."""
    labels = np.asarray(labels)
    ids = np.asarray(ids)
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "b" or labels.dtype.kind not in "f":
        shown = [v for v in labels[:SHOWN].tolist()]
        names = sorted({str(v) for v in labels.tolist()}) if labels.dtype.kind in "OUS" else []
        hint = (f": class names need data.label_names, the classes in index order (e.g. "
                f"{label_names_example(names)})" if names else "")
        raise DistilleryError(
            f"{source}: {what} must hold integer class indices, got dtype {labels.dtype} "
            f"(first values {shown}){hint}"
        )
    bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
    if bad.size:
        raise DistilleryError(
            f"{source}: {what} has {bad.size} labels that are not integers: "
            f"ids {_listed(ids[bad])} have {_few(labels[bad])}"
        )
    return labels.astype(np.int64)


def label_names_example(names: Sequence) -> str:
    """``data.label_names: [a, b, c]`` for the classes ``names``, ready to paste (the first few, then ``...``)."""
    shown = ", ".join(map(str, list(names)[:SHOWN]))
    return f"data.label_names: [{shown}{', ...' if len(names) > SHOWN else ''}]"


def label_texts(labels):
    """Labels as the text that ``data.label_names`` is compared with: integral numbers without a fraction (``1``,
    not ``1.0``), anything else as ``str`` writes it."""
    import pandas as pd

    labels = pd.Series(labels)
    if pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels):
        numbers = labels.to_numpy(dtype=np.float64)
        if np.isfinite(numbers).all() and (numbers == np.round(numbers)).all():
            return labels.astype(np.int64).astype(str)
    return labels.astype(str)


def labels_are_names(labels, label_names: Sequence | None) -> bool:
    """Whether labels (none missing) name their classes from ``data.label_names`` rather than index them: always for
    text labels; for numbers (grades 5, 6, 7 with ``data.label_names: [5, 6, 7]``) when some label is no class index
    0..k-1 and every one equals a name, compared as text (``label_texts``). Labels within 0..k-1 are indices."""
    import pandas as pd

    if label_names is None:
        return False
    labels = pd.Series(labels)
    if not pd.api.types.is_numeric_dtype(labels):
        return True
    numbers = labels.to_numpy(dtype=np.float64)
    if ((numbers >= 0) & (numbers < len(label_names)) & (numbers == np.round(numbers))).all():
        return False
    return bool(label_texts(labels).isin(set(map(str, label_names))).all())


def class_indices(labels, names: Sequence, by_name: bool) -> np.ndarray:
    """Checked labels (``table_problems``) as int64 class indices: names (``by_name``, see ``labels_are_names``) by
    their place in ``names``, compared as text (``label_texts``); indices as they are."""
    import pandas as pd

    labels = pd.Series(labels)
    if by_name:
        labels = label_texts(labels).map({str(n): i for i, n in enumerate(names)})
    return labels.to_numpy(np.int64)


def unused_indices_problem(labels, what: str, where: str) -> str | None:
    """Without ``data.label_names`` integer labels are class indices 0..k-1, k one above the largest: a problem line
    when some index below it has no row in any split (labels 1, 2, 3 would make a class 0 that no row has), with the
    ``data.label_names`` that names the classes by value instead; None when every index has rows, or when the labels
    are not non-negative integers (``table_problems`` names those). ``what``: where the labels are, as messages name
    them (``column 'label'``)."""
    import pandas as pd

    labels = pd.Series(labels).dropna()
    if not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels) or labels.empty:
        return None
    numbers = labels.to_numpy(dtype=np.float64)
    if not (np.isfinite(numbers) & (numbers >= 0) & (numbers == np.round(numbers))).all():
        return None
    present = np.unique(numbers.astype(np.int64))
    unused = np.setdiff1d(np.arange(present[-1] + 1), present)
    if not unused.size:
        return None
    return (f"{where}: {what} holds the labels {_listed(present)} and none of {_listed(unused)}: "
            f"without data.label_names labels are class indices 0..{present[-1]}, and a class without rows is an "
            f"output that no row teaches; name the classes by these values with {label_names_example(present)} (or "
            "number the labels from 0)")


def validate_arrays(ids, inputs, labels, label_names: Sequence[str], source: str) -> None:
    """Rows of a loaded source: same length, not empty, finite inputs, labels in the label set, unique ids."""
    ids, inputs, labels = np.asarray(ids), np.asarray(inputs), np.asarray(labels)
    lengths = {"ids": len(ids), "inputs": len(inputs), "labels": len(labels)}
    if len(set(lengths.values())) != 1:
        raise DistilleryError(f"{source}: inputs and labels differ in length: {lengths}")
    if len(ids) == 0:
        raise DistilleryError(f"{source}: no rows")
    flat = inputs.reshape(len(inputs), -1)
    if flat.dtype.kind not in "iuf":
        raise DistilleryError(f"{source}: inputs must be numeric, got dtype {flat.dtype}")
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    if bad.size:
        raise DistilleryError(f"{source}: {bad.size} rows have NaN/inf inputs: ids {_listed(ids[bad])}")
    labels = integer_labels(labels, ids, source)
    bad = np.flatnonzero((labels < 0) | (labels >= len(label_names)))
    if bad.size:
        raise DistilleryError(
            f"{source}: {bad.size} labels outside the label set 0..{len(label_names) - 1}: "
            f"ids {_listed(ids[bad])} have {_few(labels[bad])}"
        )
    check_unique_ids(ids, source)


def check_unique_ids(ids, source: str, column: str = "id") -> None:
    unique, counts = np.unique(np.asarray(ids), return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1]
        raise DistilleryError(f"{source}: column '{column}' has {repeated.size} duplicate ids: {_listed(repeated)}")


def refuse(problems: list[str]) -> None:
    """One error for every problem found (a single one as it is), so a file is fixed in one pass."""
    if len(problems) == 1:
        raise DistilleryError(problems[0])
    if problems:
        raise DistilleryError(f"{len(problems)} problems with the data:\n  " + "\n  ".join(problems))


def table_problems(
    df,
    input_columns: Sequence[str],
    label_column: str,
    source: str,
    label_names: Sequence[str] | None = None,
    id_column: str | None = "id",
    rows: tuple[str, np.ndarray] | None = None,
    by_name: bool | None = None,
    label_what: str | None = None,
) -> list[str]:
    """What is wrong with a table read from a file, one line per problem: the columns exist, rows are there,
    inputs non-empty, labels valid, ids unique.

    Labels are integer class indices (``0..len(label_names)-1`` when ``label_names`` is given)
    or, with ``label_names``, names from that list (``by_name``: as ``labels_are_names`` decides over every
    table of the source; None: over this one). Rows are named by ``rows`` (a word and one name
    per row, e.g. ``("lines", ...)``) when given, else by ``id_column`` when the table has one, else
    by their 0-based row number. ``label_what``: where the labels are, as messages name them (default
    ``column '<label_column>'``).
    """
    import pandas as pd

    columns = [*input_columns, label_column]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        return [f"{source}: missing column(s) {missing}; the file has columns {list(map(str, df.columns))}"]
    if len(df) == 0:
        return [f"{source}: no rows"]
    problems = []
    has_ids = id_column is not None and id_column in df.columns  # None: the ids are checked elsewhere, or unused
    if has_ids:
        if df[id_column].isna().any():
            empty = np.flatnonzero(df[id_column].isna().to_numpy())
            problems.append(f"{source}: column '{id_column}' is empty at rows {_listed(empty)}")
        unique, counts = np.unique(df[id_column].dropna().to_numpy(), return_counts=True)
        if (counts > 1).any():
            repeated = unique[counts > 1]
            problems.append(f"{source}: column '{id_column}' has {repeated.size} duplicate ids: {_listed(repeated)}")
    names = df[id_column].to_numpy() if has_ids else np.arange(len(df))
    which = "ids" if has_ids else "rows"
    if rows is not None:
        which, names = rows

    problems += input_problems(df, input_columns, source, (which, names))

    labels = df[label_column]
    what = label_what or f"column '{label_column}'"
    bad = np.flatnonzero(labels.isna().to_numpy())
    if bad.size:
        problems.append(f"{source}: {what} has {bad.size} missing labels: {which} "
                        f"{_listed(names[bad])}")
        labels, names = labels[~labels.isna()], np.asarray(names)[~labels.isna().to_numpy()]
    if by_name is None:
        by_name = labels_are_names(labels, label_names)
    unnamed = (np.flatnonzero(~label_texts(labels).isin(set(map(str, label_names))).to_numpy())
               if label_names is not None else None)
    if by_name:
        bad = unnamed
        if bad.size:
            problems.append(f"{source}: {what} has {bad.size} labels outside the label set "
                            f"{list(label_names)}: {which} {_listed(names[bad])} have {_few(labels.to_numpy()[bad])}")
        return problems
    try:
        values = integer_labels(labels.to_numpy(), names, source, what)
    except DistilleryError as error:
        return [*problems, str(error)]
    upper = math.inf if label_names is None else len(label_names)
    bad = np.flatnonzero((values < 0) | (values >= upper))
    if bad.size:
        allowed = "non-negative" if label_names is None else f"0..{len(label_names) - 1}"
        problem = (f"{source}: {what} has {bad.size} labels outside {allowed}: "
                   f"{which} {_listed(names[bad])} have {_few(values[bad])}")
        if unnamed is not None and 0 < unnamed.size < len(values):  # some are names: meant to name classes by value?
            problem += (f"; nor are they all names in data.label_names {list(label_names)} (labels are read as names "
                        f"when every one is a name): {which} {_listed(names[unnamed])} have {_few(values[unnamed])}")
        problems.append(problem)
    return problems


def input_problems(df, input_columns: Sequence[str], source: str, rows: tuple[str, np.ndarray]) -> list[str]:
    """Each input column of ``df`` with an empty, blank or NaN cell, one line each; ``rows``: how messages name the
    rows (a word, a name each)."""
    import pandas as pd

    which, names = rows
    problems = []
    for column in input_columns:
        values = df[column]
        empty = values.isna().to_numpy().copy()
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            empty |= values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(values):
            empty |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
        bad = np.flatnonzero(empty)
        if bad.size:
            problems.append(f"{source}: column '{column}' has {bad.size} empty or NaN inputs: {which} "
                            f"{_listed(names[bad])}")
    return problems


def check_inputs_present(df, input_columns: Sequence[str], source: str, rows: tuple[str, np.ndarray]) -> None:
    """No input cell of ``df`` empty, blank or NaN (``input_problems``)."""
    refuse(input_problems(df, input_columns, source, rows))


def check_stratifiable(labels, fraction: float, split: str, source: str, label_names: Sequence[str],
                       test_took=None) -> None:
    """Raise if ``labels`` cannot be split off a stratified ``fraction`` for ``split`` (what scikit-learn needs).
    ``test_took``: the labels of the rows a stratified test split took from the same rows before, which the message
    counts in."""
    labels = np.asarray(labels)
    n, classes = len(labels), np.unique(labels)

    def name(c: int):
        return label_names[c] if 0 <= c < len(label_names) else c

    counts = {int(c): int((labels == c).sum()) for c in classes}
    scarce = {c: k for c, k in counts.items() if k < 2}
    if scarce:
        before = ""
        if test_took is not None:
            taken = {c: int((np.asarray(test_took) == c).sum()) for c in scarce}
            before = (f" left for train and {split} once the stratified test split took "
                      f"{ {name(c): k for c, k in taken.items()} } of their "
                      f"{ {name(c): k + taken[c] for c, k in scarce.items()} }")
        raise DistilleryError(
            f"{source}: too few rows to split off a stratified {split} split: classes "
            f"{ {name(c): k for c, k in scarce.items()} } have fewer than 2 rows{before} (give more data or fewer "
            "classes)"
        )
    n_split = math.ceil(fraction * n)
    if n_split < len(classes) or n - n_split < len(classes):
        raise DistilleryError(
            f"{source}: {n} rows are too few for a stratified {split} split of fraction {fraction}: "
            f"it would get {n_split} rows and leave {n - n_split}, but each side needs at least one row "
            f"of each of the {len(classes)} classes"
        )


def check_splits_not_empty(sizes: dict[str, int], source: str) -> None:
    empty = [name for name, size in sizes.items() if size == 0]
    if empty:
        raise DistilleryError(f"{source}: empty split(s) {empty} (sizes {sizes})")
