"""Data sources and the ``prepare`` stage's logic.

``prepare`` turns a source (``sklearn:digits``, ``npz:<file>``; numeric tables go to ``data.tables``, text
sources to ``data.text``) into ``train`` / ``validation`` / ``test`` splits (``distillery.data.prepared``), array and
table inputs scaled by ``data.scaling`` (``distillery.data.scaling``). Every row carries a stable integer ``id``
(its position in the source, never re-numbered), its input and its ``label``. With ``task: causal_lm`` a text
source is a corpus of token sequences without labels (``data.corpus``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from .corpus import prepare_corpus
from .params import TEXT_KINDS, check_source
from .prepared import Prepared, Split, save_prepared, untaught_classes
from .scaling import DIGITS_PIXEL_MAX, UINT8_PIXEL_MAX, as_pixels, scale_splits
from .sources import PREPARE_READS, source_record
from .splitting import split_indices
from .tables import table_splits
from .text import prepare_text
from .validation import check_splits_not_empty, integer_labels, validate_arrays

@dataclass
class RawData:
    """A loaded source: inputs (N, ...) (float32 pixels in 0..1 or float64 features), integer labels, ids, and an
    optional fixed test split."""

    inputs: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    label_names: list[str]
    test_mask: np.ndarray | None = None  # True where the source itself puts a row in its test split
    pixel_max: float | None = None  # pixels: the source's values divided by this to 0..1 (data.scaling: auto keeps them)

    @property
    def pixels(self) -> bool:
        return self.pixel_max is not None


def load_source(source: str, root: Path = Path(".")) -> RawData:
    """Load ``data.source``; relative file paths are taken from ``root`` (the repo)."""
    kind, _, rest = source.partition(":")
    if kind == "sklearn":
        from sklearn.datasets import load_digits

        digits = load_digits()
        inputs = as_pixels(digits.images, DIGITS_PIXEL_MAX)
        labels = digits.target.astype(np.int64)
        return RawData(inputs, labels, np.arange(len(labels)), [str(n) for n in digits.target_names],
                       pixel_max=DIGITS_PIXEL_MAX)
    if kind == "npz":
        return _load_npz(root / rest, source)
    raise DistilleryError(f"data.source = {source!r}: {check_source(source)}")


def _load_npz(path: Path, source: str) -> RawData:
    if not path.exists():
        raise DistilleryError(f"data.source = {source!r}: file not found: {path}")
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
        if missing:
            raise DistilleryError(f"{path}: missing arrays {missing}; it has {sorted(arrays.files)}")
        try:
            parts = {k: arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise DistilleryError(f"{path}: {exc}") from None
    for split in ("train", "test"):
        if len(parts[f"x_{split}"]) != len(parts[f"y_{split}"]):
            raise DistilleryError(
                f"{path}: x_{split} has {len(parts[f'x_{split}'])} rows but y_{split} has {len(parts[f'y_{split}'])}"
            )
    check_splits_not_empty({"x_train": len(parts["x_train"]), "x_test": len(parts["x_test"])}, str(path))
    x = np.concatenate([parts["x_train"], parts["x_test"]])
    if x.dtype.kind not in "iuf":
        raise DistilleryError(f"{path}: x_train/x_test must be numeric arrays, got dtype {x.dtype}")
    ids = np.arange(len(x))
    y = integer_labels(np.concatenate([parts["y_train"], parts["y_test"]]), ids, str(path), "y_train/y_test")
    pixel_max = UINT8_PIXEL_MAX if x.dtype == np.uint8 else None
    inputs = as_pixels(x, pixel_max) if pixel_max else x.astype(np.float64)
    names = [str(i) for i in range(max(int(y.max()), 0) + 1)]
    test_mask = ids >= len(parts["x_train"])
    return RawData(inputs, y, ids, names, test_mask, pixel_max)



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
        raw = load_source(data_params["source"], root)
        validate_raw(raw, data_params["source"])
        index = split_indices(raw.labels, data_params, raw.test_mask, data_params["source"], raw.label_names)
        splits = {name: Split(raw.ids[rows], raw.inputs[rows], raw.labels[rows]) for name, rows in index.items()}
        label_names, meta, pixels = raw.label_names, {"source": data_params["source"]}, raw.pixels
        meta["inputs"] = {"kind": "array", "pixel_max": raw.pixel_max}
    splits, meta["scaling"] = scale_splits(splits, data_params["scaling"], pixels)
    meta["sizes"] = {k: len(v.ids) for k, v in splits.items()}
    if untaught := untaught_classes(splits, label_names):
        meta["classes_without_train_rows"] = untaught
    meta.update(source_record(data_params, PREPARE_READS, root))
    prepared = Prepared(splits, label_names, list(splits["train"].inputs.shape[1:]), meta)
    save_prepared(prepared, out_dir)
    return prepared
