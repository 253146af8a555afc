"""Data sources and the prepared splits every later stage reads.

``prepare`` turns a source (``sklearn:digits``, ``npz:<file>``) into ``train`` /
``validation`` / ``test`` splits saved with ``datasets`` (Arrow, memory-mapped on load).
Every row carries a stable integer ``id`` (its position in the source, never re-numbered),
its input and its ``label`` (a ``ClassLabel`` that holds the label names).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DistilleryError
from .io import atomic_dir
from .validation import check_splits_not_empty, check_stratifiable, integer_labels, validate_arrays

SPLITS = ("train", "validation", "test")
TEXT_KINDS = ("hf", "file", "files")
SOURCE_KINDS = {
    "sklearn": "sklearn:digits (bundled with scikit-learn, offline)",
    "npz": "npz:<file.npz> with x_train, y_train, x_test, y_test (MNIST layout)",
    "hf": "hf:<dataset>[:<config>] (datasets.load_dataset: a Hub id, cached for offline use, or a local directory)",
    "file": "file:<path> (one CSV/TSV/JSON Lines/Parquet file, optionally .gz, split with data.split_seed)",
    "files": "files (one file per split, named by data.files)",
}
META_FILE = "meta.json"


@dataclass
class RawData:
    """A loaded source: inputs (N, ...) float32, integer labels, ids, and an optional fixed test split."""

    inputs: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    label_names: list[str]
    test_mask: np.ndarray | None = None  # True where the source itself puts a row in its test split


@dataclass
class Split:
    """One prepared split, rows in id order: NumPy arrays, and for text the ``datasets.Dataset`` itself
    (columns ``id``, ``text``, optionally ``text_pair``, ``label``; ``inputs`` is then None)."""

    ids: np.ndarray
    inputs: np.ndarray | None
    labels: np.ndarray
    dataset: object = None


@dataclass
class Prepared:
    splits: dict[str, Split]
    label_names: list[str]
    input_shape: list[int]
    meta: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def is_text(self) -> bool:
        return self.meta.get("kind") == "text"


def check_source(source: str) -> str | None:
    """An error text if ``data.source`` is not of a known form, else None (used by the params schema)."""
    kind, _, rest = source.partition(":")
    if kind == "files" and not rest:
        return None
    if kind not in SOURCE_KINDS or kind == "files" or not rest:
        return "unknown data source; expected one of: " + "; ".join(SOURCE_KINDS.values())
    if kind == "sklearn" and rest != "digits":
        return "the only scikit-learn source is 'sklearn:digits'"
    return None


def load_source(source: str, root: Path = Path(".")) -> RawData:
    """Load ``data.source``; relative file paths are taken from ``root`` (the repo)."""
    kind, _, rest = source.partition(":")
    if kind == "sklearn":
        from sklearn.datasets import load_digits

        digits = load_digits()
        inputs = (digits.images / 16.0).astype(np.float32)  # pixels are 0..16
        labels = digits.target.astype(np.int64)
        return RawData(inputs, labels, np.arange(len(labels)), [str(n) for n in digits.target_names])
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
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    inputs = (x / scale).astype(np.float32)
    names = [str(i) for i in range(max(int(y.max()), 0) + 1)]
    test_mask = ids >= len(parts["x_train"])
    return RawData(inputs, y, ids, names, test_mask)


def split_indices(
    labels: np.ndarray,
    data_params: dict,
    test_mask: np.ndarray | None,
    source: str = "data",
    label_names: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Stratified train/validation/test row indices from ``data.split_seed`` (sorted, so ids stay ordered)."""
    from sklearn.model_selection import train_test_split

    seed = data_params["split_seed"]
    rows = np.arange(len(labels))
    names = label_names or [str(i) for i in range(int(labels.max()) + 1)]
    try:  # the checks name the scarce classes; scikit-learn's own error is the fallback
        if test_mask is None:
            check_stratifiable(labels, data_params["test_fraction"], "test", source, names)
            rest, test = train_test_split(
                rows, test_size=data_params["test_fraction"], stratify=labels, random_state=seed
            )
        else:
            rest, test = rows[~test_mask], rows[test_mask]
        check_stratifiable(labels[rest], data_params["validation_fraction"], "validation", source, names)
        train, validation = train_test_split(
            rest, test_size=data_params["validation_fraction"], stratify=labels[rest], random_state=seed
        )
    except ValueError as exc:
        raise DistilleryError(f"{source}: cannot make stratified splits from {len(labels)} rows: {exc}") from None
    index = {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}
    check_splits_not_empty({name: len(rows) for name, rows in index.items()}, source)
    return index


def validate_raw(raw: RawData, source: str) -> None:
    """Reject data that would silently train garbage (see ``distillery.validation.validate_arrays``)."""
    validate_arrays(raw.ids, raw.inputs, raw.labels, raw.label_names, source)


def prepare(data_params: dict, out_dir: Path, root: Path = Path(".")) -> Prepared:
    """Load the source, split it and save the splits (atomically) under ``out_dir``."""
    if data_params["source"].partition(":")[0] in TEXT_KINDS:
        from .text_data import prepare_text

        return prepare_text(data_params, out_dir, root)
    raw = load_source(data_params["source"], root)
    validate_raw(raw, data_params["source"])
    index = split_indices(raw.labels, data_params, raw.test_mask, data_params["source"], raw.label_names)
    splits = {name: Split(raw.ids[rows], raw.inputs[rows], raw.labels[rows]) for name, rows in index.items()}
    prepared = Prepared(
        splits,
        raw.label_names,
        list(raw.inputs.shape[1:]),
        {"source": data_params["source"], "sizes": {k: len(v.ids) for k, v in splits.items()}},
    )
    save_prepared(prepared, out_dir)
    return prepared


def save_prepared(prepared: Prepared, out_dir: Path) -> None:
    import datasets
    import pyarrow as pa

    width = int(np.prod(prepared.input_shape))
    features = datasets.Features(
        {
            "id": datasets.Value("int64"),
            "features": datasets.List(datasets.Value("float32"), length=width),
            "label": datasets.ClassLabel(names=prepared.label_names),
        }
    )
    tables = {}
    for name, split in prepared.splits.items():
        table = pa.table(
            {
                "id": pa.array(split.ids.astype(np.int64)),
                "features": pa.FixedSizeListArray.from_arrays(pa.array(split.inputs.reshape(-1)), width),
                "label": pa.array(split.labels.astype(np.int64)),
            }
        ).cast(features.arrow_schema)
        tables[name] = datasets.Dataset(table, info=datasets.DatasetInfo(features=features))
    meta = {**prepared.meta, "input_shape": prepared.input_shape, "label_names": prepared.label_names}
    datasets.disable_progress_bars()
    with atomic_dir(out_dir) as tmp:
        datasets.DatasetDict(tables).save_to_disk(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_prepared(path: Path) -> Prepared:
    """Read the splits written by ``prepare`` (memory-mapped Arrow) into NumPy arrays."""
    import datasets

    path = Path(path)
    if not (path / META_FILE).exists():
        raise DistilleryError(f"{path}: no prepared data here (run the prepare stage first)")
    meta = json.loads((path / META_FILE).read_text())
    dsd = datasets.load_from_disk(str(path))
    splits = {}
    if meta.get("kind") == "text":
        for name in SPLITS:
            ids = dsd[name].data.column("id").to_numpy().copy()
            labels = dsd[name].data.column("label").to_numpy().astype(np.int64)
            splits[name] = Split(ids, None, labels, dsd[name])
        return Prepared(splits, meta["label_names"], meta["input_shape"], meta)
    for name in SPLITS:
        table = dsd[name].data
        n = table.num_rows
        inputs = table.column("features").combine_chunks().flatten().to_numpy().reshape(n, *meta["input_shape"])
        # copies: Arrow memory is read-only, torch wants writable arrays
        ids = table.column("id").to_numpy().copy()
        splits[name] = Split(ids, inputs.copy(), table.column("label").to_numpy().astype(np.int64))
    return Prepared(splits, meta["label_names"], meta["input_shape"], meta)
