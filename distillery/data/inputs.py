"""How a model's raw rows become its inputs: recorded next to its weights, applied to new rows.

``prepare`` notes in meta.json what turned each source's rows into model inputs (``meta["inputs"]``, with the
``scaling`` statistics, a table's features and categories, the text columns, a corpus's prompts and chat template);
``input_record`` gathers it into one self-contained record that the teacher and every student save beside their
weights (``inputs.json``). ``read_rows`` reads a file of new rows (CSV/TSV/JSON Lines/Parquet, or ``.npy``/``.npz``
arrays) and makes the inputs that classifier takes, ``read_prompts`` the prompts a language model answers, with the
same code and statistics as ``prepare``: a source row gives the same bits again. Every row is checked first;
messages name the file, the column and the rows.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from .arrays import read_arrays
from .chats import message_list, render_prompt
from .corpus import cell_texts, encode, prompt_texts
from .files import check_columns, integer_cells, read_table, row_names
from .image_files import IMAGE_SUFFIXES, is_image_input, read_images
from .layout import channels_first, layout_shape
from .params import template_fields
from .prepared import UNLABELLED, Prepared
from .scaling import as_pixels, rescale
from .tables import check_values, encoded_features
from .validation import _few, _listed, check_inputs_present, did_you_mean

logger = logging.getLogger(__name__)

INPUTS_FILE = "inputs.json"
ID_COLUMN = "id"
ARRAY_SUFFIXES = (".npy", ".npz")


def input_record(prepared: Prepared) -> dict | None:
    """The record a model saves of its inputs, from the prepared data (its meta.json); None for a language-model
    corpus (its tokenizer, saved with the model, is all it needs)."""
    meta = prepared.meta
    own = meta.get("inputs")
    if own is None:
        return None
    record = {**own, "label_names": list(prepared.label_names)}
    if own["kind"] == "array":
        record.update(shape=list(prepared.input_shape), scaling=meta["scaling"])
    elif own["kind"] == "table":
        record.update(feature_columns=meta["feature_columns"], categories=meta.get("categories", {}),
                      scaling=meta["scaling"])
    elif own["kind"] == "causal_lm":
        record.update(max_length=meta["max_length"], chat_template=meta["chat_template"],
                      end_of_turn=meta["end_of_turn"])
    return record


def save_record(record: dict | None, folder: Path) -> None:
    """``folder/inputs.json`` (nothing for None); ``folder`` is a model directory being written atomically."""
    if record is not None:
        (Path(folder) / INPUTS_FILE).write_text(json.dumps(record, indent=2) + "\n")


def saved_models(root: Path = Path("models")) -> list[str]:
    """The model folders the pipeline saved under ``root`` (each holds an ``inputs.json``), sorted."""
    return sorted(path.parent.as_posix() for path in root.glob(f"**/{INPUTS_FILE}"))


def load_record(folder: Path) -> dict:
    """A model directory's ``inputs.json``, or an error that says what the directory is instead (for a folder that
    does not exist: the models there are)."""
    path = Path(folder) / INPUTS_FILE
    if not Path(folder).exists():
        found = saved_models()
        there = (f"the models saved here: {', '.join(found[:12])}{', ...' if len(found) > 12 else ''}" if found else
                 "no model is saved under models/ here (`make repro` trains them)")
        raise DistilleryError(f"{folder}: no such model folder; {there}")
    if not Path(folder).is_dir():
        raise DistilleryError(f"{folder}: a file, not a model folder (the folder that holds {INPUTS_FILE})")
    if not path.exists():
        raise DistilleryError(
            f"{folder}: no {INPUTS_FILE}: not a model saved by the pipeline (the teacher, models/teacher, or a "
            "student, models/students/<kd|hard>/seed_<s>), or saved before models recorded their inputs (run "
            "`dvc repro` again)")
    return json.loads(path.read_text())


@dataclass
class NewRows:
    """New rows as a model takes them: their ids and, for array and table models, the inputs (N, ...) float32;
    for text models the ``datasets.Dataset`` of ``id``, ``text`` (and ``text_pair``) and ``label`` (unknown); for
    image files the file of each row."""

    ids: np.ndarray
    inputs: np.ndarray | None = None
    dataset: object = None
    files: list[str] | None = None


@dataclass
class NewPrompts:
    """Prompts for a language model: their ids, their tokens laid row after row with each row's count, the text
    the model saw, and the references the file gives (a response column, or a conversation's last answer)."""

    ids: np.ndarray
    tokens: np.ndarray
    lengths: np.ndarray
    texts: list[str]
    references: list[str | None]


def read_prompts(record: dict, path: Path, tokenizer) -> NewPrompts:
    """The rows of ``path`` as prompts for the language model that saved ``record``, written as prepare wrote its
    prompts: ``data.prompt_column`` or ``data.prompt_template`` (in the chat template where one was set), a
    conversation (``data.messages_column``: every message, or all but a last assistant's, which is the reference),
    or for a plain corpus the text column's text, continued. Ids as in ``read_rows``. Each prompt must leave room
    for an answer within ``data.max_length`` tokens."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_SUFFIXES:
        raise DistilleryError(f"{path}: a language model takes prompts: give a CSV, TSV, JSON Lines or Parquet file")
    text = [record["messages_column"], record["prompt_column"], record["text_column"],
            *(template_fields(record["prompt_template"]) if record["prompt_template"] else [])]
    df, ids, rows = _read_new_table(path, text, record.get("id_column"))
    where = str(path)
    template = record["chat_template"]
    if record["messages_column"]:
        column = record["messages_column"]
        check_columns({"rows": df}, {"rows": where}, {column: "data.messages_column"})
        conversations, references, bad = [], [], []
        for position, value in enumerate(df[column].to_numpy(dtype=object)):
            messages = message_list(value)
            reference = None
            if messages and messages[-1]["role"] == "assistant":  # an answer given: the reference (blank: none)
                messages, reference = messages[:-1], messages[-1]["content"].strip() and messages[-1]["content"]
            if not messages or not any(m["content"].strip() for m in messages):
                bad.append(position)
            conversations.append(messages)
            references.append(reference or None)
        if bad:
            raise DistilleryError(f"{where}: column {column!r} (data.messages_column): "
                                  f"{_count(len(bad), 'row is not a list', 'rows are not lists')} of {{role, content}} "
                                  "messages with text before any last answer: "
                                  f"{rows[0]} {_listed(rows[1][bad])}")
        texts = [render_prompt(tokenizer, template, m, i) for m, i in zip(conversations, ids.tolist())]
    else:
        prompt, response = record["prompt_column"], record["text_column"]
        columns = ({name: "data.prompt_template" for name in template_fields(record["prompt_template"])}
                   if record["prompt_template"] else {prompt: "data.prompt_column"} if prompt
                   else {response: "data.text_column"})
        check_columns({"rows": df}, {"rows": where}, columns)
        check_inputs_present(df, list(columns), where, rows)
        if prompt or record["prompt_template"]:
            texts = prompt_texts(df, prompt, record["prompt_template"])
            references = [None] * len(df)
            if response in df.columns:  # the reference, where a cell gives one
                references = [text if present else None
                              for text, present in zip(cell_texts(df[response]).tolist(), df[response].notna())]
        else:
            texts, references = cell_texts(df[response]).tolist(), [None] * len(df)
        if template:
            texts = [render_prompt(tokenizer, template, [{"role": "user", "content": text}], i)
                     for text, i in zip(texts, ids.tolist())]
    tokens, lengths = encode(tokenizer, texts, end=False)
    long = np.flatnonzero((lengths >= record["max_length"]) | (lengths == 0))
    if long.size:
        raise DistilleryError(f"{where}: {_count(long.size, 'prompt tokenizes', 'prompts tokenize')} to nothing or to "
                              f"data.max_length = {record['max_length']} tokens or more (the positions the model "
                              f"learnt), leaving no room for an answer: {rows[0]} {_listed(rows[1][long])} "
                              f"{'has' if long.size == 1 else 'have'} {_few(lengths[long])} tokens")
    return NewPrompts(ids, tokens, lengths, texts, references)


def read_rows(record: dict, path: Path, array: str | None = None, pixels_as_given: bool = False) -> NewRows:
    """The rows of ``path`` as the inputs of the model that saved ``record``. Ids: the file's id column
    (``data.id_column``, else ``id``; an ``id`` array in an ``.npz``) where it has one, else row positions from 0.
    ``array``: which array of an ``.npz`` holds the inputs (default: its only one besides ``id``).
    ``pixels_as_given``: take images whose pixels all lie within 0..1 for a model of 0..255 pixels as they are
    (refused otherwise: ``_array_rows``)."""
    path = Path(path)
    kind = record["kind"]
    is_array_file = path.suffix.lower() in ARRAY_SUFFIXES
    if kind == "array":
        if is_image_input(path):
            if array is not None or pixels_as_given:
                raise DistilleryError(f"{path}: --array and --pixels-as-given are for .npy and .npz files, not "
                                      "image files")
            files, values = read_images(record, path)
            return NewRows(np.arange(len(files)), rescale(values, record["scaling"]), files=files)
        if not is_array_file:
            raise DistilleryError(f"{path}: this model takes arrays of shape {record['shape']}: give a .npy or .npz "
                                  f"file, or image files ({', '.join(IMAGE_SUFFIXES)}) or a folder of them")
        return _array_rows(record, path, array, pixels_as_given)
    if is_array_file:
        what = "feature columns" if kind == "table" else "a text column"
        raise DistilleryError(f"{path}: this model takes a table with {what}; give a CSV, TSV, JSON Lines or Parquet "
                              "file")
    if array is not None:
        raise DistilleryError(f"--array {array}: only for .npz files of an array model; this model takes a table")
    df, ids, rows = _read_new_table(path, record["columns"].values() if kind == "text" else (),
                                    record.get("id_column"))
    if kind == "table":
        return NewRows(ids, _table_inputs(record, df, str(path), rows))
    return NewRows(ids, dataset=_text_dataset(record, df, ids, str(path), rows))


def _read_new_table(path: Path, text_columns, id_column: str | None):
    """A file of new rows (its text columns read as prepare read them: as written), not empty: the DataFrame, the
    rows' ids and how messages name the rows (``_table_ids``)."""
    df = read_table(path, text_columns)
    if len(df) == 0:
        raise DistilleryError(f"{path}: no rows")
    return (df, *_table_ids(df, id_column, str(path)))


def _table_ids(df, id_column: str | None, where: str) -> tuple[np.ndarray, tuple[str, np.ndarray]]:
    """The rows' ids and how messages name the rows: the id column (``data.id_column``, else ``id``, which a file
    without the model's ``data.id_column`` falls back on too, with a warning) where the file has one, checked
    (present, integers, unique; bad rows named by their lines), else positions from 0."""
    column = id_column if id_column in df.columns else ID_COLUMN
    lines = row_names(df, where)
    if id_column and column != id_column:
        logger.warning("%s: no column %r (the model's data.id_column): %s", where, id_column,
                       f"the file's column {ID_COLUMN!r} holds the rows' ids" if column in df.columns else
                       "the rows are numbered from 0 in the output's id column")
    if column not in df.columns:
        return np.arange(len(df), dtype=np.int64), lines
    ids, bad = integer_cells(df[column])
    if bad.size:
        raise DistilleryError(f"{where}: column {column!r} holds the rows' ids, which must be integers of 64 "
                              f"bits (the output is keyed by them): no such integer in {bad.size:,} of the {len(df):,} rows: {lines[0]} "
                              f"{_listed(lines[1][bad])} have {_few(df[column].to_numpy()[bad])}; map the ids to "
                              "integers, or rename the column to number the rows from 0")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DistilleryError(f"{where}: column {column!r} holds the rows' ids, which must be unique: "
                              f"{_count(int((counts > 1).sum()), 'id appears', 'ids appear')} more than once: "
                              f"{_listed(unique[counts > 1])}")
    return ids, (column, ids)


def _count(n: int, one: str, many: str) -> str:
    """``n`` with the words for one or for many (``1 row holds``, ``3 rows hold``)."""
    return f"{n:,} {one if n == 1 else many}"


def _table_inputs(record: dict, df, where: str, rows: tuple[str, np.ndarray]) -> np.ndarray:
    """Numeric columns as numbers, categorical ones one-hot over the train categories (others all zeros, as in
    ``data.tables``), then scaled: the features in the order the model learnt them."""
    from sklearn.preprocessing import OneHotEncoder

    columns, categories = record["feature_columns"], record["categories"]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DistilleryError(f"{where}: missing feature column(s) {missing} of the model (it takes {columns}); the "
                              f"file has columns {list(map(str, df.columns))}{did_you_mean(missing, df.columns)}")
    kinds = {c: "categorical" if c in categories else "numeric" for c in columns}
    check_values(df, kinds, where, rows, constant=False)
    numeric, encoder = [c for c in columns if kinds[c] == "numeric"], None
    if categories:  # the train categories, as prepare's encoder learnt them
        text = df[list(categories)].astype(str)
        for column, known in categories.items():
            unseen = sorted(set(text[column]) - set(known))
            if unseen:
                logger.warning("%s: column '%s' has %d categories the model never saw in train, encoded as all "
                               "zeros: %s", where, column, len(unseen), _listed(unseen))
        encoder = OneHotEncoder(categories=list(categories.values()), handle_unknown="ignore",
                                sparse_output=False).fit(text)
    return rescale(encoded_features(df, numeric, list(categories), encoder), record["scaling"])


def _text_dataset(record: dict, df, ids: np.ndarray, where: str, rows: tuple[str, np.ndarray]):
    """The text columns as prepare names them (``text``, ``text_pair``), every cell present unless the model was
    trained with ``data.empty_text: keep`` (an empty cell is then an empty text)."""
    import datasets

    columns = {name: column for name, column in record["columns"].items() if column}
    check_columns({"rows": df}, {"rows": where}, {c: f"the model's {name} column" for name, c in columns.items()})
    if record.get("empty_text", "refuse") == "refuse":
        check_inputs_present(df, list(columns.values()), where, rows)
    return datasets.Dataset.from_dict({"id": ids, **{name: df[c].fillna("").astype(str).tolist()
                                                     for name, c in columns.items()},
                                       "label": np.full(len(ids), UNLABELLED, np.int64)})


def _array_rows(record: dict, path: Path, name: str | None, pixels_as_given: bool = False) -> NewRows:
    """An ``.npy`` array, or one array of an ``.npz`` (and its ``id`` array), as the model's inputs: images in the
    model's layout (``_model_layout``), pixels divided to 0..1 as the source's were, then scaled. Pixels of a
    0..255 (or 0..16) source that all lie within 0..1, not all whole, are refused (divided already, most likely)
    unless ``pixels_as_given``."""
    if not path.exists():
        raise DistilleryError(f"{path}: file not found")
    arrays, ids = read_arrays(path), None
    if isinstance(arrays, np.ndarray):
        if name is not None:
            raise DistilleryError(f"--array {name}: only for .npz files; {path} holds one array")
        values = arrays
    else:
        candidates = [k for k in arrays if k != ID_COLUMN]
        if name is None and len(candidates) != 1:
            raise DistilleryError(f"{path}: holds the arrays {sorted(arrays)}; name the one with the inputs with "
                                  "--array")
        name = name or candidates[0]
        if name not in arrays:
            raise DistilleryError(f"--array {name}: {path} has no such array; it has {sorted(arrays)}")
        values, ids = arrays[name], arrays.get(ID_COLUMN)
    values = _model_layout(values, record, path)
    if not len(values):
        raise DistilleryError(f"{path}: no rows")
    if values.dtype.kind not in "iuf":
        raise DistilleryError(f"{path}: the inputs must be numbers, got dtype {values.dtype}")
    ids = _array_ids(ids, len(values), path)
    flat = values.reshape(len(values), -1).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    if bad.size:
        raise DistilleryError(f"{path}: {_count(bad.size, 'row holds', 'rows hold')} NaN or infinite values: ids "
                              f"{_listed(ids[bad])}")
    pixel_max = record["pixel_max"]
    if pixel_max is not None:
        bad = np.flatnonzero(((flat < 0) | (flat > pixel_max)).any(axis=1))
        if bad.size:
            raise DistilleryError(f"{path}: the model learnt from pixels of 0..{pixel_max:g} as its source holds them; "
                                  f"{_count(bad.size, 'row holds', 'rows hold')} values outside: ids "
                                  f"{_listed(ids[bad])}")
        if pixel_max > 1 and flat.max() <= 1 and not np.all(flat == np.round(flat)) and not pixels_as_given:
            raise DistilleryError(f"{path}: every pixel lies within 0..1, but the model learnt from pixels of "
                                  f"0..{pixel_max:g} as its source holds them (prepare divides them by "
                                  f"{pixel_max:g}): if these are divided already, multiply them by {pixel_max:g} "
                                  "first; to predict on them as they are, pass --pixels-as-given")
        values = as_pixels(values, pixel_max)
    else:
        values = values.astype(np.float64)
    return NewRows(ids, rescale(values, record["scaling"]))


def _model_layout(values: np.ndarray, record: dict, path: Path) -> np.ndarray:
    """``values`` as (N, *the model's shape), the pipeline's layout (channels first: ``data.layout``). Taken: rows
    of the source's sample shape (channels last where the source's were: ``record["channels"]``, then moved as
    prepare moved them), or flattened so; rows already channels first; for a model of (H, W) images, rows of
    (H, W, 1) or (1, H, W) (the size-1 channel axis dropped); and a single image, the whole array one sample of
    those shapes, as one row."""
    shape = list(record["shape"])
    layout = record.get("channels")  # samples of 3 dims only; None: no channel axis (or a model saved before)
    source = layout_shape(shape, layout)
    width = int(np.prod(shape))
    forms = [source, shape] + ([shape + [1], [1] + shape] if len(shape) == 2 else [])
    row = list(values.shape[1:])
    if values.ndim >= 1 and row in (source, [width]):
        return channels_first(values.reshape(len(values), *source), layout)
    if values.ndim >= 1 and row in forms:
        return values.reshape(len(values), *shape)
    if list(values.shape) in forms:  # one image
        return _model_layout(values[None], record, path)
    def rows(form: list[int]) -> str:
        return f"(N, {', '.join(map(str, form))})"

    takes = f"{rows(source)} or {rows([width])}"
    if source != shape:
        takes += f" as its source holds them (channels {layout}), or {rows(shape)} channels first"
    if len(shape) == 2:
        takes += f"; {rows(shape + [1])} and {rows([1] + shape)} too"
    raise DistilleryError(f"{path}: inputs of shape {list(values.shape)}; the model takes {takes}")


def _array_ids(ids: np.ndarray | None, rows: int, path: Path) -> np.ndarray:
    """An ``.npz``'s ``id`` array checked (integers, one per row, unique), or positions from 0."""
    if ids is None:
        return np.arange(rows, dtype=np.int64)
    if ids.shape != (rows,) or ids.dtype.kind not in "iu":
        raise DistilleryError(f"{path}: the id array must hold one integer per row ({rows}); it has shape "
                              f"{list(ids.shape)} and dtype {ids.dtype}")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DistilleryError(f"{path}: {_count(int((counts > 1).sum()), 'id appears', 'ids appear')} more than "
                              f"once: {_listed(unique[counts > 1])}")
    return ids.astype(np.int64)
