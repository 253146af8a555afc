"""Text sources for ``prepare``: ``hf:<dataset>[:<config>]``, ``file:<path>`` and ``files`` (one file per split).

Each source split becomes a table of ``text`` (and ``text_pair`` for sentence-pair tasks) and an
integer ``label``; reading, ids, labels and the split into train/validation/test are ``data.files``'.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from ..io import atomic_dir
from .files import check_columns, labelled_splits, load_tables
from .prepared import META_FILE, Prepared, Split, load_prepared, repeated_in_train, train_classes_missing, \
    untaught_classes
from .sources import PREPARE_READS, source_record


def prepare_text(data_params: dict, out_dir: Path, root: Path = Path(".")) -> Prepared:
    """Load a text source, validate it, split it (see the module docstring) and save it under ``out_dir``."""
    source = data_params["source"]
    if not data_params["text_column"]:
        raise DistilleryError(f"data.text_column is required for the text source {source!r}")
    tables, where, declared = load_tables(data_params, root,
                                          [data_params["text_column"], data_params["text_pair_column"]])
    named = {data_params[param]: f"data.{param}" for param in ("text_column", "text_pair_column", "label_column",
                                                                "id_column") if data_params[param]}
    inputs = [c for c in (data_params["text_column"], data_params["text_pair_column"]) if c]
    label = data_params["label_column"]
    id_column = data_params["id_column"]
    check_columns(tables, where, named)
    parts, names, origin, hidden = labelled_splits(tables, where, data_params, declared, inputs)

    columns = {"text": data_params["text_column"]}
    if data_params["text_pair_column"]:
        columns["text_pair"] = data_params["text_pair_column"]
    splits = {}
    for split, df in parts.items():
        splits[split] = Split(df["id"].to_numpy(np.int64), None, df[label].to_numpy(np.int64),
                              {name: df[col].fillna("").astype(str).tolist() for name, col in columns.items()})
    meta = {
        "kind": "text",
        "source": source,
        "sizes": {k: len(v.ids) for k, v in splits.items()},
        "split_origin": origin,
        "hidden_test_labels": hidden,
        "text_columns": list(columns),
        "inputs": {"kind": "text", "columns": columns, "id_column": id_column,
                   "empty_text": data_params["empty_text"]},
        **source_record(data_params, PREPARE_READS, root),
    }
    if untaught := untaught_classes(splits, names):
        meta["classes_without_train_rows"] = untaught
    if missing := train_classes_missing(splits, names):
        meta["classes_without_validation_or_test_rows"] = missing
    texts = {name: list(zip(*(split.dataset[column] for column in sorted(split.dataset))))  # text (and pair)
             for name, split in splits.items()}
    if any((repeated := repeated_in_train(texts, source, "text")).values()):
        meta["texts_also_in_train"] = repeated
    save_text(Prepared(splits, names, [], meta), out_dir)
    return load_prepared(out_dir)


def save_text(prepared: Prepared, out_dir: Path) -> None:
    """The splits as a ``datasets.DatasetDict`` (``id``, text column(s), ``ClassLabel`` ``label``) + meta.json."""
    import datasets

    text_columns = prepared.meta["text_columns"]
    features = datasets.Features({
        "id": datasets.Value("int64"),
        **{name: datasets.Value("string") for name in text_columns},
        "label": datasets.ClassLabel(names=prepared.label_names),
    })
    dsd = datasets.DatasetDict({
        name: datasets.Dataset.from_dict(
            {"id": split.ids, **split.dataset, "label": split.labels}, features=features
        )
        for name, split in prepared.splits.items()
    })
    meta = {**prepared.meta, "input_shape": prepared.input_shape, "label_names": prepared.label_names}
    datasets.disable_progress_bars()
    with atomic_dir(out_dir) as tmp:
        dsd.save_to_disk(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
