"""Data sources and the ``prepare`` stage's logic.

``prepare`` turns a source (arrays such as ``sklearn:digits`` and ``npz:<file>`` through ``data.arrays``; numeric
tables go to ``data.tables``, text sources to ``data.text``) into ``train`` / ``validation`` / ``test`` splits
(``distillery.data.prepared``), array and table inputs scaled by ``data.scaling`` (``distillery.data.scaling``). Every row carries a stable integer ``id``
(its position in the source, never re-numbered), its input and its ``label``. Images whose samples have 3 dims
are made channels first, ``(C, H, W)``, here, once (``data.channels``: ``distillery.data.layout``). With
``task: causal_lm`` a text source is a corpus of token sequences without labels (``data.corpus``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import DistilleryError
from .arrays import RawData, load_source
from .corpus import prepare_corpus
from .layout import channels_first, source_layout
from .params import TEXT_KINDS
from .prepared import Prepared, Split, features_repeated_in_train, save_prepared, train_classes_missing, \
    untaught_classes
from .scaling import scale_splits
from .sources import PREPARE_READS, source_record
from .splitting import split_indices
from .tables import table_splits
from .text import prepare_text
from .validation import validate_arrays


def validate_raw(raw: RawData, source: str) -> None:
    """Reject data that would silently train garbage (see ``distillery.data.validation.validate_arrays``)."""
    validate_arrays(raw.ids, raw.inputs, raw.labels, raw.label_names, source)


def prepare(data_params: dict, out_dir: Path, root: Path = Path("."), task: str = "classification") -> Prepared:
    """Load the source, split it, scale array and table inputs and save the splits (atomically) under ``out_dir``;
    ``task: causal_lm``: the text source as a tokenized corpus (``data.corpus``)."""
    if task == "causal_lm":
        return prepare_corpus(data_params, out_dir, root)
    if task != "classification":
        raise DistilleryError(f"task = {task!r}: expected 'classification' or 'causal_lm'")
    if data_params["feature_columns"] is not None:
        splits, label_names, meta = table_splits(data_params, root)
        pixels = False
    elif data_params["source"].partition(":")[0] in TEXT_KINDS:
        return prepare_text(data_params, out_dir, root)
    else:
        raw = load_source(data_params["source"], root, data_params["label_names"])
        layout = source_layout(raw.inputs.shape[1:], data_params["channels"],
                               f"data.source = {data_params['source']!r}")
        validate_raw(raw, data_params["source"])
        raw = replace(raw, inputs=channels_first(raw.inputs, layout))  # images channels first from here on
        index = split_indices(raw.labels, data_params, raw.test_mask, data_params["source"], raw.label_names)
        splits = {name: Split(raw.ids[rows], raw.inputs[rows], raw.labels[rows]) for name, rows in index.items()}
        label_names, meta, pixels = raw.label_names, {"source": data_params["source"]}, raw.pixels
        meta["inputs"] = {"kind": "array", "pixel_max": raw.pixel_max}
        if layout is not None:  # samples of 3 dims: the source's layout, which predict's new images are in too
            meta["inputs"]["channels"] = layout
    if any((repeated := features_repeated_in_train(splits, data_params["source"])).values()):
        meta["inputs_also_in_train"] = repeated
    splits, meta["scaling"] = scale_splits(splits, data_params["scaling"], pixels)
    meta["sizes"] = {k: len(v.ids) for k, v in splits.items()}
    if untaught := untaught_classes(splits, label_names):
        meta["classes_without_train_rows"] = untaught
    if missing := train_classes_missing(splits, label_names):
        meta["classes_without_validation_or_test_rows"] = missing
    meta.update(source_record(data_params, PREPARE_READS, root))
    prepared = Prepared(splits, label_names, list(splits["train"].inputs.shape[1:]), meta)
    save_prepared(prepared, out_dir)
    return prepared
