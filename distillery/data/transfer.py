"""Transfer sets (``data.transfer``): rows the student learns from through the teacher's soft targets only.

Hinton et al. (2015) call the data a student is distilled on the *transfer set*; it need not be labelled.
Three kinds of rows, in this order, are built once by the ``transfer`` stage into ``data/transfer`` (Arrow,
like ``data/prepared``) and scored once by the ``transfer_logits`` stage (``data/transfer_logits``):

- ``rest``: the train rows ``data.max_train_examples`` leaves out, labels dropped (text sources). Their
  labels are kept aside in ``source_label`` only so the report can show the teacher's agreement with them
  and what the hard student would reach on all labels; no training reads them.
- ``source``: every row of another source of the same kind (``hf:``, ``file:``, ``files``, ``npz:``, whose images
  alone will do; for a numeric table, one file with its feature columns, encoded and scaled as the prepared rows),
  its labels (if any) ignored.
- ``augment``: N seeded variants of each labelled train row. Text: Tang et al. (2019), "Distilling
  Task-Specific Knowledge from BERT into Simple Neural Networks" - each word is masked (``mask_prob``) or else
  replaced (``replace_prob``) by a word drawn uniformly from the labelled train rows' vocabulary (the paper
  draws a word of the same part of speech; this is the simpler same-corpus replacement), then with
  ``ngram_prob`` the variant is cut to a random n-gram, n uniform in 1..``ngram_max``. Variants equal to their
  sentence are dropped. Images: Hinton et al.'s jitter - a shift by up to ``jitter`` pixels each way (never
  none), zero fill, plus Gaussian noise of std ``noise`` when > 0.

Ids never collide with the prepared rows: ``rest`` rows keep their source ids (rows of the same source), the
other rows are numbered from ``meta["id_offset"]`` = 1 + the largest id of the prepared and rest rows.
In ``distill`` the transfer rows carry the label ``UNLABELLED`` (-100), which every method's hard-label term
masks out (``distillery.methods.losses.labelled_ce``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from ..io import atomic_dir
from .prepared import UNLABELLED, Prepared, Split
from .sources import source_record, transfer_reads

TRANSFER_DIR = Path("data/transfer")
TRANSFER_LOGITS = Path("data/transfer_logits")
LOGITS_FILE = "transfer.parquet"
SUMMARY_FILE = "summary.json"
GENERATED_SEQUENCES, GENERATED_LOGITS = "generated_sequences.parquet", "generated.parquet"  # language models' (seqkd)
META_FILE = "meta.json"
ORIGINS = ("rest", "source", "augment")
NO_LABEL = -1  # source_label of rows whose source has no label


@dataclass
class TransferSet:
    """The transfer rows: ids, inputs (arrays) or ``dataset`` (text: ``id``, text column(s)), the label the
    source had (``NO_LABEL`` if none; never trained on) and where each row came from (an ``ORIGINS`` index)."""

    ids: np.ndarray
    inputs: np.ndarray | None
    source_labels: np.ndarray
    origins: np.ndarray
    dataset: object = None
    meta: dict = None

    def __len__(self) -> int:
        return len(self.ids)

    def as_split(self) -> Split:
        """A prepared-like ``Split`` (what inference reads): labels ``UNLABELLED``."""
        labels = np.full(len(self.ids), UNLABELLED, np.int64)
        return Split(self.ids, self.inputs, labels, self.dataset)


def enabled(transfer_params: dict) -> bool:
    return bool(transfer_params["rest"] or transfer_params["source"] or transfer_params["augment"])


# ----------------------------------------------------------------------------------------------- augmentation


def augment_sentence(words: list[str], vocabulary: list[str], rng: np.random.Generator, tp: dict) -> list[str]:
    """One Tang et al. (2019) variant of a sentence (a list of words)."""
    out = []
    for word in words:
        x = rng.random()
        if x < tp["mask_prob"]:
            out.append(tp["mask_token"])
        elif x < tp["mask_prob"] + tp["replace_prob"]:
            out.append(vocabulary[int(rng.integers(len(vocabulary)))])
        else:
            out.append(word)
    if out and rng.random() < tp["ngram_prob"]:
        n = int(rng.integers(1, tp["ngram_max"] + 1))
        if n < len(out):
            start = int(rng.integers(len(out) - n + 1))
            out = out[start : start + n]
    return out


def augment_texts(columns: dict[str, list[str]], tp: dict) -> tuple[dict[str, list[str]], np.ndarray]:
    """``tp["augment"]`` variants of each row of ``columns`` (text column -> texts), seeded by ``tp["seed"]``:
    the variants' columns and, per variant, the row it came from. A variant equal to its row is dropped."""
    names = list(columns)
    vocabulary = sorted({w for name in names for text in columns[name] for w in text.split()})
    if not vocabulary:
        return {name: [] for name in names}, np.zeros(0, np.int64)
    rng = np.random.default_rng([tp["seed"], 14])
    out: dict[str, list[str]] = {name: [] for name in names}
    origin = []
    for row in range(len(columns[names[0]])):
        originals = [columns[name][row] for name in names]
        for _ in range(tp["augment"]):
            variant = [" ".join(augment_sentence(text.split(), vocabulary, rng, tp)) for text in originals]
            if variant == originals or not all(v.strip() for v in variant):
                continue
            for name, text in zip(names, variant):
                out[name].append(text)
            origin.append(row)
    return out, np.asarray(origin, np.int64)


def jitter_images(images: np.ndarray, tp: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``tp["augment"]`` jittered copies of each image (N, ..., H, W), seeded: the copies, the row each came
    from and the (dy, dx) shift of each (never (0, 0)). (``augment`` imports torch, which the transfer stage needs
    for nothing else: imported here.)"""
    from .augment import shift_image

    j = tp["jitter"]
    shifts = np.array([(dy, dx) for dy in range(-j, j + 1) for dx in range(-j, j + 1) if (dy, dx) != (0, 0)]
                      or [(0, 0)])  # jitter 0: noise only
    rng = np.random.default_rng([tp["seed"], 14])
    origin = np.repeat(np.arange(len(images)), tp["augment"])
    chosen = shifts[rng.integers(len(shifts), size=len(origin))]
    out = np.stack([shift_image(images[r], int(dy), int(dx)) for r, (dy, dx) in zip(origin, chosen)]) \
        if len(origin) else np.zeros((0, *images.shape[1:]), images.dtype)
    if tp["noise"] > 0:
        out = out + rng.normal(0.0, tp["noise"], size=out.shape).astype(out.dtype)
    return out.astype(images.dtype, copy=False), origin, chosen


# ----------------------------------------------------------------------------------------------- building


def _refuse(param: str, problem: str):
    raise DistilleryError(f"params.yaml: data.transfer.{param}: {problem}")


def _rest_rows(data_params: dict, root: Path) -> "object":
    """The DataFrame of train rows ``data.max_train_examples`` leaves out (text sources), labels as indices."""
    from .files import labelled_splits, load_tables

    inputs = [c for c in (data_params["text_column"], data_params["text_pair_column"]) if c]
    tables, where, declared = load_tables(data_params, root, inputs)
    dropped: dict = {}
    labelled_splits(tables, where, data_params, declared, inputs, dropped=dropped)
    return dropped.get("train")


def _source_texts(tp: dict, data_params: dict, columns: dict, root: Path) -> dict[str, list[str]]:
    """The text column(s) of every split of the transfer source (labels ignored)."""
    from .files import load_tables

    spec = tp["source"]
    kind, _, rest = spec.partition(":")
    if kind == "file" and not (root / rest).exists():
        _refuse("source", f"{spec!r}: file not found: {root / rest}")
    tables, where, _ = load_tables({**data_params, "source": spec, "source_splits": None}, root,
                                   list(columns.values()))
    out: dict[str, list[str]] = {name: [] for name in columns}
    for split, df in tables.items():
        missing = [col for col in columns.values() if col not in df.columns]
        if missing:
            _refuse("source", f"{spec!r} ({where[split]}) has no column {missing} (data.text_column); it has "
                              f"{list(map(str, df.columns))}")
        for name, col in columns.items():
            out[name] += df[col].astype(str).tolist()
    return out


def _source_arrays(tp: dict, root: Path, prepared: Prepared, channels: str) -> np.ndarray:
    """The inputs of an array transfer source (``load_source`` without labels: an ``npz:`` may hold images alone), in
    the prepared layout: images of 3 dims moved to channels first as prepare moved the source's (``data.channels``,
    ``data.layout``), then of the prepared shape; pixels (uint8, divided to 0..1 when loaded) where the source's
    are, features as they are where the source's are."""
    from .arrays import load_source
    from .layout import channels_first, source_layout

    spec = tp["source"]
    kind, _, rest = spec.partition(":")
    if kind == "npz" and not (root / rest).exists():
        _refuse("source", f"{spec!r}: file not found: {root / rest}")
    try:
        raw = load_source(spec, root, labelled=False)
    except DistilleryError as exc:
        _refuse("source", f"{spec!r}: {exc}")
    pixel_max = prepared.meta.get("inputs", {}).get("pixel_max")
    if (raw.pixel_max is None) != (pixel_max is None):
        def kind(p):
            return f"pixels of 0..{p:g} (divided by {p:g} when loaded)" if p is not None else "features, taken as they are"
        _refuse("source", f"{spec!r}: its inputs are {kind(raw.pixel_max)}, data.source's are {kind(pixel_max)}: "
                          "both need the same kind (images as uint8 in both, or features in both)")
    shape = prepared.input_shape
    given = list(raw.inputs.shape[1:])
    inputs = channels_first(raw.inputs, source_layout(given, channels, f"params.yaml: data.transfer.source = {spec!r}"))
    if list(inputs.shape[1:]) != list(shape):
        moved = f", {list(inputs.shape[1:])} channels first" if inputs.shape[1:] != raw.inputs.shape[1:] else ""
        _refuse("source", f"{spec!r}: inputs of shape {given}{moved}; the prepared data's are {shape}"
                          f"{' (channels first)' if len(shape) == 3 else ''}")
    return inputs.astype(np.float32)


def _source_table(tp: dict, prepared: Prepared, root: Path) -> np.ndarray:
    """The rows of a numeric table's transfer source (``file:<path>``) as the prepared rows are: the same feature
    columns, categories one-hot over the train categories, scaled with the train statistics (``data.inputs``)."""
    from .inputs import input_record, read_rows

    spec = tp["source"]
    path = root / spec.partition(":")[2]
    if not path.exists():
        _refuse("source", f"{spec!r}: file not found: {path}")
    try:
        return read_rows(input_record(prepared), path).inputs.astype(np.float32)
    except DistilleryError as exc:
        _refuse("source", f"{spec!r}: {exc}")


def build_transfer(data_params: dict, prepared: Prepared, root: Path = Path(".")) -> TransferSet:
    """The transfer set ``data.transfer`` asks for, checked (see the module docstring); empty when it is off.
    Raises ``DistilleryError`` naming the param before anything is written."""
    tp = data_params["transfer"]
    meta = {"enabled": enabled(tp), "counts": {o: 0 for o in ORIGINS}, "kind": "text" if prepared.is_text else "array",
            **source_record(data_params, transfer_reads(data_params), root)}
    train = prepared.splits["train"]
    max_id = max(int(s.ids.max()) for s in prepared.splits.values() if len(s.ids))
    if prepared.is_text:
        columns = {name: name for name in prepared.meta["text_columns"]}
        source_columns = {"text": data_params["text_column"]}
        if data_params["text_pair_column"]:
            source_columns["text_pair"] = data_params["text_pair_column"]
        labelled = {name: list(train.dataset[name]) for name in columns}
        texts: dict[str, list[str]] = {name: [] for name in columns}
    else:
        if prepared.meta.get("scaling", {}).get("scaler", "none") != "none" and tp["source"] and \
                prepared.meta.get("kind") != "table":  # a table's rows are encoded and scaled as prepare's were
            _refuse("source", f"the prepared inputs are scaled ({prepared.meta['scaling']['scaler']}); another "
                              "array source needs data.scaling: none (or pixel inputs, data.scaling: auto)")
        arrays = []
    ids, source_labels, origins = [], [], []

    if tp["rest"]:
        if not prepared.is_text:
            _refuse("rest", f"true with data.source = {data_params['source']!r}: the rest of the train rows "
                            "exists for text sources with data.max_train_examples")
        df = _rest_rows(data_params, root)
        if df is None or not len(df):
            _refuse("rest", "true, but data.max_train_examples = "
                            f"{data_params['max_train_examples']} leaves no train row out: the rest is empty")
        ids.append(df["id"].to_numpy(np.int64))
        source_labels.append(df[data_params["label_column"]].to_numpy(np.int64))
        origins.append(np.full(len(df), ORIGINS.index("rest")))
        for name, col in source_columns.items():
            texts[name] += df[col].astype(str).tolist()
        max_id = max(max_id, int(df["id"].max()))
        meta["counts"]["rest"] = len(df)

    offset = max_id + 1
    meta["id_offset"] = offset
    next_id = offset
    if tp["source"]:
        if prepared.is_text:
            rows = _source_texts(tp, data_params, source_columns, root)
            n = len(rows["text"])
            for name in columns:
                texts[name] += rows[name]
        elif prepared.meta.get("kind") == "table":
            x = _source_table(tp, prepared, root)
            n = len(x)
            arrays.append(x)
        else:
            x = _source_arrays(tp, root, prepared, data_params["channels"])
            n = len(x)
            arrays.append(x)
        if n == 0:
            _refuse("source", f"{tp['source']!r} has no rows")
        ids.append(np.arange(next_id, next_id + n))
        source_labels.append(np.full(n, NO_LABEL))
        origins.append(np.full(n, ORIGINS.index("source")))
        next_id += n
        meta["counts"]["source"] = n

    if tp["augment"]:
        if prepared.is_text:
            variants, origin = augment_texts(labelled, tp)
            for name in columns:
                texts[name] += variants[name]
        else:
            if len(prepared.input_shape) < 2:
                _refuse("augment", f"jitter shifts images; the inputs have shape {prepared.input_shape}")
            if tp["jitter"] == 0 and tp["noise"] == 0:
                _refuse("jitter", "0 with data.transfer.noise = 0: every variant would be its image")
            variants, origin, _ = jitter_images(train.inputs, tp)
            arrays.append(variants)
        n = len(origin)
        ids.append(np.arange(next_id, next_id + n))
        source_labels.append(train.labels[origin])  # the row's own label, for the teacher's agreement only
        origins.append(np.full(n, ORIGINS.index("augment")))
        meta["counts"]["augment"] = n
        meta["augment_of"] = "labelled train rows"

    ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    source_labels = np.concatenate(source_labels).astype(np.int64) if source_labels else np.zeros(0, np.int64)
    origins = np.concatenate(origins).astype(np.int8) if origins else np.zeros(0, np.int8)
    if meta["enabled"]:
        if not len(ids):
            _refuse("augment" if tp["augment"] else "source", "the transfer set is empty")
        if prepared.is_text:
            seen = set(zip(*[labelled[name] for name in columns]))
            duplicate = np.array([row in seen for row in zip(*[texts[name] for name in columns])])
        else:
            seen = {x.tobytes() for x in train.inputs}
            duplicate = np.array([x.tobytes() in seen for x in np.concatenate(arrays)])
        if duplicate.all():
            which = [o for o in ORIGINS if meta["counts"][o]]
            _refuse(which[0], f"all {len(ids)} transfer rows are duplicates of labelled train rows: the teacher's "
                              "view of them adds nothing")
        meta["duplicates_of_labelled"] = int(duplicate.sum())
    meta["rows"] = int(len(ids))
    if prepared.is_text:
        return TransferSet(ids, None, source_labels, origins, {**texts}, meta)
    inputs = np.concatenate(arrays).astype(np.float32) if arrays else \
        np.zeros((0, *prepared.input_shape), np.float32)
    return TransferSet(ids, inputs.reshape(len(ids), *prepared.input_shape), source_labels, origins, None, meta)


def save_transfer(transfer: TransferSet, out_dir: Path) -> None:
    """``data/transfer``: a ``datasets.Dataset`` (``id``, inputs, ``source_label``, ``origin``) + meta.json."""
    import datasets
    import pyarrow as pa

    columns = {"id": pa.array(transfer.ids.astype(np.int64))}
    features = {"id": datasets.Value("int64")}
    if transfer.meta["kind"] == "text":
        for name, texts in transfer.dataset.items():
            columns[name] = pa.array(list(texts), pa.string())
            features[name] = datasets.Value("string")
    else:
        shape = list(transfer.inputs.shape[1:])
        width = int(np.prod(shape))
        columns["features"] = pa.FixedSizeListArray.from_arrays(
            pa.array(transfer.inputs.astype(np.float32).reshape(-1)), width)
        features["features"] = datasets.List(datasets.Value("float32"), length=width)
        transfer.meta["input_shape"] = shape
    columns["source_label"] = pa.array(transfer.source_labels.astype(np.int64))
    columns["origin"] = pa.array(transfer.origins.astype(np.int64))
    features.update({"source_label": datasets.Value("int64"), "origin": datasets.Value("int64")})
    features = datasets.Features(features)
    dataset = datasets.Dataset(pa.table(columns).cast(features.arrow_schema),
                               info=datasets.DatasetInfo(features=features))
    datasets.disable_progress_bars()
    with atomic_dir(out_dir) as tmp:
        dataset.save_to_disk(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(transfer.meta, indent=2) + "\n")


def load_transfer(path: Path = TRANSFER_DIR) -> TransferSet:
    import datasets

    path = Path(path)
    if not (path / META_FILE).exists():
        raise DistilleryError(f"{path}: no transfer set here (run the transfer stage first)")
    meta = json.loads((path / META_FILE).read_text())
    if not meta["rows"]:  # datasets cannot load a table without rows back
        empty = np.zeros(0, np.int64)
        return TransferSet(empty, None, empty, empty.astype(np.int8), None, meta)
    dataset = datasets.load_from_disk(str(path))
    table = dataset.data
    ids = table.column("id").to_numpy().copy()
    source_labels = table.column("source_label").to_numpy().copy()
    origins = table.column("origin").to_numpy().copy()
    if meta["kind"] == "text":
        texts = dataset.remove_columns(["source_label", "origin"])
        texts = texts.add_column("label", np.full(len(ids), UNLABELLED, np.int64))
        return TransferSet(ids, None, source_labels, origins, texts, meta)
    n = len(ids)
    inputs = table.column("features").combine_chunks().flatten().to_numpy().reshape(n, *meta["input_shape"])
    return TransferSet(ids, inputs.astype(np.float32), source_labels, origins, None, meta)


def describe(meta: dict) -> str:
    """Where the transfer rows came from, in words (the report's setting table)."""
    if not meta.get("enabled"):
        return "none (the labelled rows only)"
    parts = [f"{meta['counts'][o]:,} {o}" for o in ORIGINS if meta["counts"].get(o)]
    return ", ".join(parts)


def agreement(logits: np.ndarray, transfer: TransferSet) -> dict:
    """The teacher's agreement with the labels the transfer rows had in their source (rest rows: their own label;
    augmented rows: their sentence's/image's), where there are any; per origin too."""
    known = transfer.source_labels != NO_LABEL
    hits = logits.argmax(1) == transfer.source_labels
    out = {"labelled_rows": int(known.sum()),
           "agreement": round(float(hits[known].mean()), 4) if known.any() else None, "by_origin": {}}
    for k, origin in enumerate(ORIGINS):
        rows = known & (transfer.origins == k)
        if rows.any():
            out["by_origin"][origin] = {"rows": int(rows.sum()), "agreement": round(float(hits[rows].mean()), 4)}
    return out


def load_scored(prepared: Prepared, transfer_dir: Path = TRANSFER_DIR, logits_dir: Path = TRANSFER_LOGITS,
                T: float = 1.0) -> tuple[TransferSet, np.ndarray] | None:
    """The transfer set and the teacher's logits on it (joined by id; top-k files rebuilt for temperature ``T``,
    see ``read_logits``), or None when ``data.transfer`` is off."""
    from ..io import read_logits

    transfer = load_transfer(transfer_dir)
    if not transfer.meta.get("enabled") or not len(transfer):
        return None
    return transfer, read_logits(Path(logits_dir) / LOGITS_FILE, transfer.ids, prepared.num_labels, T)


def int64_labels(dataset):
    """``dataset`` with its ``label`` column cast to int64 in memory. ``Dataset.cast_column`` to a plain value type
    writes a cache file beside the Arrow files the dataset was read from: into another stage's output, which DVC
    then sees as changed (every later `dvc repro` re-ran distill)."""
    import datasets

    features = datasets.Features({**dataset.features, "label": datasets.Value("int64")})
    return dataset.cast(features, keep_in_memory=True)


def with_transfer(prepared: Prepared, transfer: TransferSet, labelled_repeats: int = 1) -> Prepared:
    """A copy of ``prepared`` whose ``train`` split is the labelled rows (``labelled_repeats`` times) followed by
    the transfer rows, labelled ``UNLABELLED`` (the Trainer shuffles the union)."""
    from dataclasses import replace

    train = prepared.splits["train"]
    rows = transfer.as_split()
    k = labelled_repeats
    ids = np.concatenate([np.tile(train.ids, k), rows.ids])
    labels = np.concatenate([np.tile(train.labels, k), rows.labels])
    if prepared.is_text:
        import datasets

        labelled = int64_labels(train.dataset)
        names = labelled.column_names
        union = datasets.concatenate_datasets([labelled] * k + [rows.dataset.select_columns(names)])
        split = Split(ids, None, labels, union)
    else:
        inputs = np.concatenate([np.tile(train.inputs, (k,) + (1,) * (train.inputs.ndim - 1)),
                                 rows.inputs.reshape(len(rows.ids), *train.inputs.shape[1:])])
        split = Split(ids, inputs, labels)
    return replace(prepared, splits={**prepared.splits, "train": split})


def union_logits(train_logits: np.ndarray, transfer_logits: np.ndarray, labelled_repeats: int = 1) -> np.ndarray:
    """Target logits in the row order of ``with_transfer``'s train split."""
    return np.concatenate([np.tile(train_logits, (labelled_repeats, 1)), transfer_logits]).astype(np.float32)


def with_source_labels(prepared: Prepared, transfer: TransferSet) -> Prepared:
    """The ceiling reference: ``prepared`` whose train split also holds the ``rest`` rows *with* the labels their
    source gave them (what a hard student would reach with every label; ``bench/hard_all.py``)."""
    from dataclasses import replace

    rest = np.flatnonzero(transfer.origins == ORIGINS.index("rest"))
    if not rest.size:
        raise DistilleryError("data.transfer.rest: the transfer set has no rest rows, so no extra labels")
    train = prepared.splits["train"]
    ids = np.concatenate([train.ids, transfer.ids[rest]])
    labels = np.concatenate([train.labels, transfer.source_labels[rest]])
    if prepared.is_text:
        import datasets

        labelled = int64_labels(train.dataset)
        extra = transfer.dataset.select(rest).remove_columns("label").add_column("label", transfer.source_labels[rest])
        union = datasets.concatenate_datasets([labelled, int64_labels(extra).select_columns(labelled.column_names)])
        split = Split(ids, None, labels, union)
    else:
        split = Split(ids, np.concatenate([train.inputs, transfer.inputs[rest]]), labels)
    return replace(prepared, splits={**prepared.splits, "train": split})
