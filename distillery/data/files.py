"""Source files and datasets as labelled tables: reading CSV/TSV/JSON Lines/Parquet files (or a Hugging Face
dataset), numbering their rows with stable ids, turning labels into class indices and splitting them into the
prepared train/validation/test splits. Text sources (``data.text``), numeric tables (``data.tables``) and
language-model corpora (``data.corpus``) build on this module and never import each other.

Ids are positions in the source (train rows first, then validation, then test), so they never change with the
split seed; or, with ``data.id_column``, that column's integers. Which prepared split comes from where:

- the source has labelled train, validation and test splits: used as they are;
- its test labels are hidden (GLUE: all -1) or it has no test split: its validation split becomes the
  prepared ``test`` split and a stratified ``data.validation_fraction`` of train the prepared
  ``validation`` split (model selection never sees the rows that are scored);
- train and test only: validation is split off train;
- one file (or train only): the usual stratified three-way split with ``data.split_seed``.

A corpus has no labels: the same rules, with plain (unstratified) random splits (``source_parts``).

``data.max_train_examples`` then keeps a random subset (``data.split_seed``) of the prepared train split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from .prepared import SPLITS
from .sentences import check_train_to_split, sentence_split_indices, sentence_split_origin
from .splitting import split_indices
from .validation import _few, _listed, class_indices, did_you_mean, labels_are_names, refuse, table_problems, \
    unused_indices_problem


HIDDEN_LABEL = -1
READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def file_kind(path: Path) -> str:
    """``csv``, ``tsv``, ``json`` (JSON Lines, or one JSON array) or ``parquet``, from the file name (a ``.gz``
    suffix aside)."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = READERS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise DistilleryError(f"{path}: unknown file type; expected one of {', '.join(READERS)} (optionally .gz)")
    return kind


def read_table(path: Path, text_columns=()):
    """A CSV/TSV (also ``.gz``), JSON Lines or Parquet file as a DataFrame; text cells stay text ("NA" too). A CSV or
    TSV cell of ``text_columns`` stays text even where it reads as a number (`` 7``, ``007``, ``1.50`` as written);
    JSON Lines and Parquet keep the types they store."""
    import pandas as pd

    path = Path(path)
    kind = file_kind(path)
    if not path.exists():
        raise DistilleryError(f"{path}: file not found")
    try:
        if kind in ("csv", "tsv"):
            import csv

            return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", keep_default_na=False, na_values=[""],
                               quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL,
                               dtype={column: str for column in text_columns if column})
        if kind == "json":
            return read_json_rows(path)
        return pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise DistilleryError(f"{path}: cannot read it as {kind}: {exc}") from None


def read_json_rows(path: Path):
    """JSON Lines (an object per line), or a file that is one JSON array of objects (``json.dump`` of a list of
    dicts), as a DataFrame; a line that is no JSON object is named by its number."""
    import gzip
    import json

    import pandas as pd

    def text():
        return (gzip.open if path.suffix.lower() == ".gz" else open)(path, "rt", encoding="utf-8")

    with text() as file:
        start = file.read(4096).lstrip()[:1]
    if start == "[":
        rows = pd.read_json(path, dtype=False)
        if not isinstance(rows, pd.DataFrame) or any(isinstance(c, int) for c in rows.columns):
            raise DistilleryError(f"{path}: a JSON array must hold one object per row (with the column names)")
        return rows
    try:
        return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, TypeError) as error:
        with text() as file:
            for number, line in enumerate(file, 1):
                try:
                    row = json.loads(line) if line.strip() else {}
                except json.JSONDecodeError as exc:
                    raise DistilleryError(f"{path}: line {number} is not JSON ({exc.msg}): JSON Lines hold one "
                                          "object per line") from None
                if not isinstance(row, dict):
                    raise DistilleryError(f"{path}: line {number} is not a JSON object: JSON Lines hold one object "
                                          "({\"column\": value, ...}) per line")
        raise DistilleryError(f"{path}: cannot read it as JSON Lines: {error}") from None


def load_tables(data_params: dict, root: Path, text_columns=()) -> tuple[dict, dict, list[str] | None]:
    """Source split name -> DataFrame, split name -> where it came from (for messages), and the label names
    the source itself declares (a ``ClassLabel``), if any; ``text_columns`` of a CSV/TSV file are read as text."""
    source = data_params["source"]
    kind, _, rest = source.partition(":")
    if kind == "file":
        return {"train": read_table(root / rest, text_columns)}, {"train": str(root / rest)}, None
    if kind == "files":
        files = data_params["files"]
        return ({split: read_table(root / path, text_columns) for split, path in files.items()},
                {split: str(root / path) for split, path in files.items()}, None)
    import datasets

    name, _, config = rest.partition(":")
    local = (root / name).is_dir()
    chosen = data_params["source_splits"]  # split -> the source's split name, or None: the source's own names
    try:
        path = str(root / name) if local else name
        dsd = dict(zip(chosen, datasets.load_dataset(path, config or None, split=list(chosen.values())))) \
            if chosen else datasets.load_dataset(path, config or None)
    except Exception as exc:  # datasets raises many types: offline, unknown name or split, bad config
        raise DistilleryError(f"data.source = {source!r}: cannot load it with datasets.load_dataset"
                              f"{f' (data.source_splits = {chosen})' if chosen else ''}: {exc}") from None
    unknown = sorted(set(dsd) - set(SPLITS))
    if unknown or "train" not in dsd:
        raise DistilleryError(f"data.source = {source!r}: splits {sorted(dsd)}; expected train and optionally "
                              "validation and test, or name the ones to read in data.source_splits (e.g. "
                              "{train: train_sft, test: test_sft})")
    feature = dsd["train"].features.get(data_params["label_column"])
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return ({split: dsd[split].to_pandas() for split in dsd},
            {split: f"{source} (split {(chosen or {}).get(split, split)})" for split in dsd}, names)


def _labels_as_ints(tables: dict, data_params: dict, declared: list[str] | None) -> list[str]:
    """Label names, with every table's label column (checked already: ``source_problems``) turned into class indices
    in place: indices as they are, names (``labels_are_names``, over every table) by their place in the names."""
    import pandas as pd

    label = data_params["label_column"]
    names = data_params["label_names"] or declared
    values = pd.concat([df[label] for df in tables.values()])
    if names is None:
        if pd.api.types.is_numeric_dtype(values):
            names = [str(i) for i in range(int(values.max()) + 1)]
        else:
            names = sorted(values.astype(str).unique())
    by_name = labels_are_names(values, names)
    for df in tables.values():
        df[label] = class_indices(df[label], names, by_name)
    return [str(n) for n in names]  # a class without train rows: prepared.untaught_classes


def number_rows(tables: dict, id_column: str | None = None, where: dict | None = None) -> dict:
    """The tables with an ``id`` column: positions in the source, train rows first, then validation, then test;
    or, with ``data.id_column``, the values of that column (integers, unique over every split: ``id_problems``)."""
    if id_column is not None:
        refuse(id_problems(tables, id_column, where or {split: split for split in tables}))
    return _numbered(tables, id_column)


def _numbered(tables: dict, id_column: str | None) -> dict:
    """``number_rows`` without its check (the caller made it)."""
    if id_column is not None:
        return {split: df.assign(id=integer_cells(df[id_column])[0]) for split, df in tables.items()}
    offset, numbered = 0, {}
    for split in SPLITS:
        if split in tables:
            numbered[split] = tables[split].assign(id=np.arange(offset, offset + len(tables[split])))
            offset += len(numbered[split])
    return numbered


def source_problems(tables: dict, where: dict, data_params: dict, declared: list[str] | None,
                    inputs: list[str]) -> list[str]:
    """Every problem of the source's tables that ``labelled_splits`` would refuse, one line each, before any id is
    added: ``data.id_column``'s cells (``id_problems``), then each split's inputs (not with ``data.empty_text:
    keep``) and labels (``table_problems``; hidden test labels are not checked; without label names no class index
    below the largest label may go unused: ``unused_indices_problem``), so that one run names them all."""
    import pandas as pd

    id_column, label = data_params["id_column"], data_params["label_column"]
    problems = id_problems(tables, id_column, where) if id_column else []
    rows = row_labels(tables, where, id_column)
    inputs = inputs if data_params["empty_text"] == "refuse" else []  # keep: an empty text is a text
    checked = {split: df for split, df in tables.items() if not (split == "test" and hidden_labels(df, label))}
    names = data_params["label_names"] or declared
    present = [df[label].dropna() for df in checked.values() if label in df.columns]  # else table_problems says so
    labels = pd.concat(present) if present else pd.Series([], dtype=np.int64)
    by_name = labels_are_names(labels, names)  # decided over every split, so that a label means one class in all
    problems += [problem for split, df in checked.items() for problem in table_problems(
        df, inputs, label, where[split], names, id_column=None, rows=rows[split], by_name=by_name)]  # ids: above
    unused = None if names else unused_indices_problem(labels, f"column '{label}'",
                                                       ", ".join(where[split] for split in checked))
    return problems + ([unused] if unused else [])


def hidden_labels(df, label: str) -> bool:
    """Whether a test table's labels are all hidden (GLUE's −1): the source's validation split is scored instead."""
    return label in df and bool((df[label] == HIDDEN_LABEL).all())


def id_problems(tables: dict, id_column: str, where: dict) -> list[str]:
    """What is wrong with ``data.id_column`` in the source's tables, one line per problem: cells empty or not
    integers, ids repeated over the splits (each copy's file and lines named). A table without the column is
    refused at once: its rows cannot be named by it."""
    problems, seen = [], []
    for split in SPLITS:
        if split not in tables:
            continue
        df = tables[split]
        if id_column not in df.columns:
            raise DistilleryError(f"{where[split]}: data.id_column = {id_column!r}: no such column; the file has "
                                  f"columns {list(map(str, df.columns))}{did_you_mean([id_column], df.columns)}")
        values = df[id_column]
        kind, names = row_names_of(df, where[split])
        empty = np.flatnonzero(values.isna().to_numpy())
        if empty.size:
            problems.append(f"{where[split]}: data.id_column = {id_column!r} is empty at {kind} "
                            f"{_listed(names[empty])}")
        ids, bad = integer_cells(values)
        bad = np.setdiff1d(bad, empty)
        if bad.size:
            problems.append(f"{where[split]}: data.id_column = {id_column!r} must hold integers of 64 bits "
                            f"(they key the logits and predictions): no such integer in {bad.size:,} of the {len(df):,} rows: {kind} "
                            f"{_listed(names[bad])} have {_few(values.to_numpy()[bad])}; leave data.id_column out to "
                            "number the rows by position, or map the ids to integers")
        valid = np.setdiff1d(np.arange(len(df)), np.union1d(empty, bad))
        seen.append((where[split], kind, names[valid], ids[valid]))
    unique, counts = np.unique(np.concatenate([ids for *_, ids in seen]), return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1]
        places = "; ".join(f"{place} {kind} {_listed(names[np.isin(ids, repeated)])}"
                           for place, kind, names, ids in seen if np.isin(ids, repeated).any())
        problems.append(f"data.id_column = {id_column!r}: {repeated.size} ids appear more than once "
                        f"(over every split): {_listed(repeated)} ({places})")
    return problems


def integer_cells(values) -> tuple[np.ndarray, np.ndarray]:
    """A column as int64 ids, and the positions of its cells that are no int64 (missing, text, a fraction, outside
    -2**63 .. 2**63-1, or beyond 2**53 in a column read as floats, which hold no larger integer exactly); those
    cells are 0 in the ids."""
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    missing = numeric.isna().to_numpy()
    if numeric.dtype.kind in "iu":  # read as integers (a nullable column's may be missing)
        unsigned = numeric.dtype.kind == "u"
        raw = numeric.to_numpy(np.uint64 if unsigned else np.int64, na_value=0)
        bad = missing | (raw > np.iinfo(np.int64).max if unsigned else False)
        return np.where(bad, 0, raw).astype(np.int64), np.flatnonzero(bad)
    floats = numeric.to_numpy(np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = missing | (floats % 1 != 0) | (np.abs(floats) > 2.0 ** 53)
    return np.where(bad, 0, floats).astype(np.int64), np.flatnonzero(bad)


def row_names(df, path: str) -> tuple[str, np.ndarray]:
    """How messages name the rows of ``df`` read from ``path``: ("lines", line numbers) or ("rows", 0-based)."""
    positions = np.arange(len(df))
    kind = file_kind(Path(path))
    if kind == "parquet":
        return "rows", positions
    return "lines", positions + (2 if kind in ("csv", "tsv") else 1)


def row_names_of(df, where: str) -> tuple[str, np.ndarray]:
    """How messages name the rows of a source table: lines of a CSV/TSV/JSON Lines file, else 0-based rows."""
    try:
        return row_names(df, where)
    except DistilleryError:  # not a file: a Hugging Face dataset split
        return "rows", np.arange(len(df))


def row_labels(tables: dict, where: dict, id_column: str | None) -> dict:
    """split -> how ``table_problems`` names the rows: by ``data.id_column`` when given, else by line/row."""
    if id_column is not None:
        return {split: (id_column, df[id_column].to_numpy()) for split, df in tables.items()}
    return {split: row_names_of(df, where[split]) for split, df in tables.items()}


def missing_column_problems(tables: dict, where: dict, columns: dict[str, str]) -> list[str]:
    """A line for each table that lacks some of the columns (column -> the param that names it), naming each with
    its param, the file's own columns (before any id is added) and the near name it may have meant."""
    problems = []
    for split, df in tables.items():
        missing = [c for c in columns if c not in df.columns]
        if missing:
            by_param: dict[str, list[str]] = {}
            for column in missing:
                by_param.setdefault(columns[column], []).append(column)
            named = ", ".join(f"{names[0]!r} ({param})" if len(names) == 1 else f"{names} ({param})"
                              for param, names in by_param.items())
            problems.append(f"{where[split]}: missing column(s) {named}; the file has columns "
                            f"{list(map(str, df.columns))}{did_you_mean(missing, df.columns)}")
    return problems


def check_columns(tables: dict, where: dict, columns: dict[str, str]) -> None:
    """The columns (column -> the param that names it) are in every table: ``missing_column_problems`` refused."""
    refuse(missing_column_problems(tables, where, columns))


def labelled_splits(tables: dict, where: dict, data_params: dict, declared: list[str] | None = None,
                    inputs: list[str] = (), dropped: dict | None = None,
                    problems: list[str] = ()) -> tuple[dict, list[str], dict, bool]:
    """The source's tables as the prepared splits (see the module docstring), numbered (``number_rows``), each
    sorted by id with its labels as class indices: (split -> DataFrame, label names, split -> where it came from in
    words, whether the source's test labels are hidden). Ids, labels and ``inputs`` are checked first
    (``source_problems``), refused in one error with the caller's own ``problems``. ``dropped``, when given,
    receives under ``"train"`` the train rows ``data.max_train_examples`` left out (sorted by id; the transfer
    set's ``rest``)."""
    source = data_params["source"]
    label = data_params["label_column"]
    refuse([*problems, *source_problems(tables, where, data_params, declared, list(inputs))])
    tables = _numbered(tables, data_params["id_column"])
    hidden = "test" in tables and hidden_labels(tables["test"], label)
    if hidden:
        del tables["test"]
    names = _labels_as_ints(tables, data_params, declared)

    left_out = []

    def split_rows(rest, test_mask):
        if data_params["validation_split"] == "rows":
            return split_indices(rest[label].to_numpy(), data_params, test_mask, source, names)
        index, phrases = sentence_split_indices(rest[inputs[0]].astype(str).tolist(), rest[label].to_numpy(),
                                                data_params, test_mask, source, names)
        left_out.append(phrases)
        return index

    if data_params["validation_split"] == "sentences":
        check_train_to_split(tables, source)
    parts, origin = source_parts(tables, data_params, split_rows, stratified=True, hidden=bool(hidden))
    if left_out:
        sentence_split_origin(origin, left_out[0], tables, data_params, stratified=True)
    parts = cap_train(parts, origin, data_params, dropped)
    return {split: df.sort_values("id") for split, df in parts.items()}, names, origin, bool(hidden)


def source_parts(tables: dict, data_params: dict, split_rows, stratified: bool = True,
                 hidden: bool = False) -> tuple[dict, dict]:
    """The source's tables (with ids) as the prepared train/validation/test parts (see the module docstring) and
    where each came from in words. ``split_rows(rest, test_mask)`` gives split -> row positions of ``rest`` (the
    source train rows, then its held-out rows where ``test_mask`` is True; ``test_mask`` None: no held-out rows):
    stratified by label (``split_indices``) or not (``random_split_indices``, a corpus has no labels)."""
    import pandas as pd

    if "validation" in tables and "test" in tables:
        return {split: tables[split] for split in SPLITS}, {split: f"source {split}" for split in SPLITS}
    how = " (stratified)" if stratified else ""
    rest = tables["train"]
    held_out = {"test": tables["test"]} if "test" in tables else (
        {"test": tables["validation"]} if "validation" in tables else {})
    test_mask = np.zeros(len(rest), bool)
    if held_out:
        rest = pd.concat([rest, held_out["test"]], ignore_index=True)
        test_mask = np.r_[test_mask, np.ones(len(held_out["test"]), bool)]
    index = split_rows(rest, test_mask if held_out else None)
    parts = {split: rest.iloc[rows] for split, rows in index.items()}
    percent = f"{data_params['validation_fraction'] * 100:g} %"
    origin = {"train": "source train", "validation": f"{percent} of source train{how}"}
    if "test" in tables:
        origin["test"] = "source test"
    elif "validation" in tables:
        origin["test"] = "source validation" + (" (the source's test labels are hidden)" if hidden else "")
    else:
        origin = {"train": "source train", "validation": f"{percent} of the non-test rows",
                  "test": f"{data_params['test_fraction'] * 100:g} % of the rows{how}"}
    return parts, origin


def cap_train(parts: dict, origin: dict, data_params: dict, dropped: dict | None = None) -> dict:
    """``data.max_train_examples``: a random subset (``data.split_seed``) of ``parts["train"]`` (positions in its
    current order), noted in ``origin["train"]``; ``dropped`` receives the rows left out (see ``labelled_splits``)."""
    cap = data_params["max_train_examples"]
    available = len(parts["train"])
    if cap is None or cap >= available:
        return parts
    parts = dict(parts)
    keep = np.sort(np.random.default_rng(data_params["split_seed"]).choice(available, cap, replace=False))
    if dropped is not None:
        left_out = np.ones(available, bool)
        left_out[keep] = False
        dropped["train"] = parts["train"].iloc[np.flatnonzero(left_out)].sort_values("id")
    parts["train"] = parts["train"].iloc[keep]
    origin["train"] += f", a random {cap:,} of its {available:,} rows (data.max_train_examples)"
    return parts
