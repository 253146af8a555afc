"""Prepared data: the ``train`` / ``validation`` / ``test`` splits every stage after ``prepare`` reads.

The bottom of the data modules: array sources (``data.prepare``), numeric tables (``data.tables``) and text
sources (``data.text``) build a ``Prepared`` and save it here, language-model corpora (``data.corpus``) save their
token sequences themselves; every later stage loads it with ``load_prepared``. Splits are saved with ``datasets``
(Arrow, memory-mapped on load); every row carries a stable integer ``id``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from ..io import atomic_dir

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
META_FILE = "meta.json"
UNLABELLED = -100  # the label of transfer rows (data.transfer): F.cross_entropy's default ignore_index
PROMPT_LENGTH = "prompt_length"  # a corpus split's column of each row's prompt tokens (data.prompt_column)


@dataclass
class Split:
    """One prepared split, rows in id order: NumPy arrays, and for text the ``datasets.Dataset`` itself
    (columns ``id``, ``text``, optionally ``text_pair``, ``label``; ``inputs`` is then None). A language-model
    corpus: the ``datasets.Dataset`` of token sequences (``id``, ``input_ids``), every label ``UNLABELLED``."""

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

    @property
    def has_prompts(self) -> bool:
        """A corpus of prompts and responses (``data.prompt_column``, ``data.prompt_template`` or
        ``data.messages_column``)."""
        return bool(self.meta.get("prompt_column") or self.meta.get("prompt_template")
                    or self.meta.get("messages_column"))

    @property
    def is_lm(self) -> bool:
        """A language-model corpus (``task: causal_lm``): token sequences, no labels."""
        return self.meta.get("kind") == "causal_lm"


def sequence_lengths(split) -> np.ndarray:
    """Tokens per row (int64) of a corpus split (a ``Split`` or its ``datasets.Dataset``), from the Arrow list
    offsets of ``input_ids`` (no loop over rows)."""
    import pyarrow.compute as pc

    dataset = split.dataset if isinstance(split, Split) else split
    if dataset is None or "input_ids" not in dataset.column_names:
        raise DistilleryError("sequence_lengths: the split holds no token sequences (a language-model corpus)")
    # a selection (Dataset.select, shuffle) keeps the whole table and an index mapping: read the selected rows
    table = dataset.data if dataset._indices is None else dataset.with_format("arrow")[:]
    return pc.list_value_length(table.column("input_ids")).to_numpy().astype(np.int64)


def prompt_lengths(split) -> np.ndarray:
    """Each row's prompt tokens (int64) of a corpus split (a ``Split`` or its ``datasets.Dataset``); zeros for a
    corpus of plain text (``data.prompt_column`` null)."""
    dataset = split.dataset if isinstance(split, Split) else split
    if PROMPT_LENGTH not in dataset.column_names:
        return np.zeros(len(dataset), np.int64)
    table = dataset.data if dataset._indices is None else dataset.with_format("arrow")[:]
    return table.column(PROMPT_LENGTH).to_numpy().astype(np.int64)


def within_rows(lengths: np.ndarray) -> np.ndarray:
    """Each token's position in its row, for rows of ``lengths`` tokens laid one after the other."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def target_starts(prompt_lengths: np.ndarray) -> np.ndarray:
    """The first position of each row that predicts a target token: the prompt's last token predicts the
    response's first (0 without a prompt: every next token is a target)."""
    return np.maximum(np.asarray(prompt_lengths, np.int64) - 1, 0)


def target_counts(lengths: np.ndarray, prompt_lengths: np.ndarray) -> np.ndarray:
    """The target tokens of rows of ``lengths`` tokens: positions ``target_starts``..length−2 of each."""
    return np.maximum(np.asarray(lengths, np.int64) - 1 - target_starts(prompt_lengths), 0)


def token_arrays(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """A corpus split's tokens as one flat int64 array and the (rows + 1,) offsets of each sequence in it."""
    lengths = sequence_lengths(split)
    dataset = split.dataset
    table = dataset.data if dataset._indices is None else dataset.with_format("arrow")[:]
    column = table.column("input_ids").combine_chunks()
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    start = column.offsets[0].as_py()
    return column.values.to_numpy().astype(np.int64)[start:start + offsets[-1]], offsets


def untaught_classes(splits: dict, label_names: list[str]) -> dict[str, dict[str, int]]:
    """The classes no train row has, each with its rows in the other splits: the models get an output for each
    that nothing teaches (a test row of one is always wrong). Logged as a warning; ``{}`` when every class has
    train rows."""
    taught = set(np.asarray(splits["train"].labels).tolist())
    untaught = {name: {split: int((np.asarray(part.labels) == index).sum()) for split, part in splits.items()
                       if split != "train"}
                for index, name in enumerate(label_names) if index not in taught}
    if untaught:
        logger.warning("no train row has the class %s: the models get an output for %s that no row teaches",
                       "; ".join(f"{name!r} ({', '.join(f'{n} {split}' for split, n in rows.items())} rows)"
                                 for name, rows in untaught.items()), "it" if len(untaught) == 1 else "them")
    return untaught


WITHOUT_ROWS = {"validation": "checkpoint selection and temperature scaling never see {}",
                "test": "the test scores say nothing about {}"}  # what a class missing from the split costs


def train_classes_missing(splits: dict, label_names: list[str]) -> dict[str, list[str]]:
    """Split -> the classes train has that the validation or test split has no row of (too few rows of them for a
    stratified split to give each split one, or a file per split without them), each split logged as a warning;
    ``{}`` when both have every class train has."""
    taught = set(np.asarray(splits["train"].labels).tolist())
    missing = {}
    for split in ("validation", "test"):
        present = set(np.asarray(splits[split].labels).tolist())
        names = [name for index, name in enumerate(label_names) if index in taught and index not in present]
        if names:
            missing[split] = names
            one = len(names) == 1
            logger.warning("the %s split has no row of the %s %s, which train has: %s", split,
                           "class" if one else "classes", ", ".join(map(repr, names)),
                           WITHOUT_ROWS[split].format("it" if one else "them"))
    return missing


def repeated_in_train(rows: dict[str, list], source: str, what: str, same: str = "word for word") -> dict[str, int]:
    """How many validation and test rows (``rows``: split -> each row's text, prompt, tuple of texts or digest of
    its features) are ``same`` a train row's; logged as a warning (``what``: "text", "prompt" or "features") when
    any is."""
    train = set(rows["train"])
    repeated = {split: sum(row in train for row in rows[split]) for split in ("validation", "test")}
    if any(repeated.values()):
        logger.warning("%s: the %s of %s also stands in train, %s: those rows test memory as much as learning",
                       source, what, " and ".join(f"{n:,} of the {len(rows[split]):,} {split} rows"
                                                  for split, n in repeated.items() if n), same)
    return repeated


def features_repeated_in_train(splits: dict[str, Split], source: str) -> dict[str, int]:
    """``repeated_in_train`` of array and table rows: validation and test rows whose features (as the model takes
    them, before scaling) are a train row's, value for value (duplicated rows of a file fall into every split)."""
    digests = {name: [hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()
                      for row in split.inputs] for name, split in splits.items()}
    return repeated_in_train(digests, source, "features", "value for value")


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
    if meta.get("kind") == "causal_lm":
        for name in SPLITS:
            ids = dsd[name].data.column("id").to_numpy().copy()
            splits[name] = Split(ids, None, np.full(len(ids), UNLABELLED, np.int64), dsd[name])
        return Prepared(splits, meta["label_names"], meta["input_shape"], meta)
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
