"""Atomic file and directory writes, JSON, and the teacher-logits files (keyed by id)."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .errors import DistilleryError

if TYPE_CHECKING:  # imported where used: pyarrow is slow to import
    import pyarrow as pa

TIMINGS_ROOT = Path("reports/timings")  # git-ignored, no DVC output: timings differ run to run (docs/layout.md)
DISTILL_SECONDS_LINE = "distill: the students trained in "  # + "<seconds> s": the distill stage's log, read by
                                                             # distillery.experiments.sweep_report from `dvc queue logs`
SELECTION_FILE = "selection.json"  # beside a run's curves: the checkpoint it ended with (train.select), written by
                                   # distillery.training.runs, read by the report


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of an earlier write of ``path`` that was killed (no ``finally`` ran)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def umask() -> int:
    """The process's umask (read by setting it, and set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it into place, else delete it.

    A crash leaves either the old file or nothing at ``path``, never a half-written one
    (a temporary left by ``kill -9`` is removed by the next write of the same path). The file gets the mode a plain
    ``open`` gives under the umask (``mkstemp`` makes it private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Like ``atomic_path`` for a directory: fill the yielded empty dir, then it replaces ``path`` (with the mode
    ``mkdir`` gives under the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able values and arrays: names a run's checkpoint directory."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


LOGITS_WRITE = {"compression": "zstd", "use_dictionary": False}  # floats and ids: no dictionary to amortise
ENCODINGS = {"id": "DELTA_BINARY_PACKED", "logits.list.element": "BYTE_STREAM_SPLIT",
             "top_k_logits.list.element": "BYTE_STREAM_SPLIT", "rest_mean": "BYTE_STREAM_SPLIT",
             "rest_lse": "BYTE_STREAM_SPLIT"}
NUM_CLASSES_KEY = b"distillery.num_classes"


def _fixed_lists(values: np.ndarray, dtype) -> "pa.FixedSizeListArray":
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values, dtype).reshape(-1)),
                                             values.shape[1])


def write_logits(path: str | Path, ids: np.ndarray, logits: np.ndarray, top_k: int | None = None) -> None:
    """Save raw logits as Parquet, one row per id: ``id`` (int64) and ``logits`` (C float32 per row), or with
    ``top_k`` (``teacher.logits_top_k``) ``top_k_index``/``top_k_logits`` (k per row) and ``rest_mean``/``rest_lse``
    (see ``distillery.logits_top_k``), the number of classes in the file's metadata.

    Non-nullable fixed-size columns, floats byte-stream-split, ids delta-encoded, zstd: at most 4·C bytes a row
    and the id (measured: bench/logits_storage.py).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    logits = np.asarray(logits, dtype=np.float32)
    columns = {"id": pa.array(np.asarray(ids, dtype=np.int64))}
    if top_k is None:
        columns["logits"] = _fixed_lists(logits, np.float32)
    else:
        from .logits_top_k import compress

        kept = compress(logits, top_k)
        columns |= {"top_k_index": _fixed_lists(kept["index"], np.int32),
                    "top_k_logits": _fixed_lists(kept["top"], np.float32),
                    "rest_mean": pa.array(kept["rest_mean"]), "rest_lse": pa.array(kept["rest_lse"])}
    schema = pa.schema([pa.field(name, col.type, nullable=False) for name, col in columns.items()],
                       metadata={NUM_CLASSES_KEY: str(logits.shape[1]).encode()})
    table = pa.table(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **LOGITS_WRITE,
                       column_encoding={c: e for c, e in ENCODINGS.items() if c.split(".")[0] in columns})


def _rows(table, column: str, path: Path) -> np.ndarray:
    """A list column as (N, width) values: fixed-size lists, or the variable lists of older files."""
    rows = table.column(column).combine_chunks()
    if hasattr(rows, "offsets"):
        widths = np.unique(np.diff(rows.offsets.to_numpy()))
        if len(widths) > 1:
            raise DistilleryError(f"{path}: rows have different numbers of {column}: {widths.tolist()}")
        width = int(widths[0]) if len(widths) else 0
    else:
        width = rows.type.list_size
    return rows.flatten().to_numpy(zero_copy_only=False).reshape(len(rows), width)


def read_logits(path: str | Path, ids: np.ndarray, num_labels: int | None = None, T: float = 1.0) -> np.ndarray:
    """Logits from ``path`` in the order of ``ids`` (joined by id, never by row position), float32 (N, C).

    A top-k file is rebuilt into full logits for a loss at temperature ``T`` (``logits_top_k.rebuild``);
    ``T`` does not change a full file.
    Raises ``DistilleryError`` if ids are missing or extra, repeated, the width differs from
    ``num_labels``, or any value is NaN/inf.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise DistilleryError(f"{path}: logits file not found (run the teacher_logits stage)")
    table = pq.read_table(path)
    top_k = "top_k_logits" in table.column_names
    needed = ("id", "top_k_index", "top_k_logits", "rest_mean", "rest_lse") if top_k else ("id", "logits")
    for column in needed:
        if column not in table.column_names:
            raise DistilleryError(f"{path}: no '{column}' column; it has {table.column_names}")
    file_ids = table.column("id").to_numpy()
    if top_k:
        from .logits_top_k import rebuild

        width = int((table.schema.metadata or {}).get(NUM_CLASSES_KEY, b"0"))
        if not width:
            raise DistilleryError(f"{path}: a top-k logits file without its number of classes ({NUM_CLASSES_KEY!r})")
    else:
        values = _rows(table, "logits", path).astype(np.float32)
        width = values.shape[1]
    if num_labels is not None and width != num_labels:
        raise DistilleryError(f"{path}: logits have {width} classes but the data has {num_labels} labels")
    if top_k:
        index = _rows(table, "top_k_index", path)
        if index.size and (index.min() < 0 or index.max() >= width or index.shape[1] >= width):
            raise DistilleryError(f"{path}: {index.shape[1]} top-k classes per row, not all in 0..{width - 1}")
        values = rebuild(index, _rows(table, "top_k_logits", path), table.column("rest_mean").to_numpy(),
                         table.column("rest_lse").to_numpy(), width, T)

    unique, counts = np.unique(file_ids, return_counts=True)
    if (counts > 1).any():
        raise DistilleryError(f"{path}: repeated ids {unique[counts > 1][:5].tolist()}")
    ids = np.asarray(ids)
    missing = np.setdiff1d(ids, file_ids)
    extra = np.setdiff1d(file_ids, ids)
    if missing.size or extra.size:
        raise DistilleryError(
            f"{path}: ids do not match the prepared split: {missing.size} missing "
            f"(e.g. {missing[:5].tolist()}), {extra.size} extra (e.g. {extra[:5].tolist()})"
        )
    order = np.argsort(file_ids)
    aligned = values[order[np.searchsorted(file_ids, ids, sorter=order)]]
    bad = ~np.isfinite(aligned).all(axis=1)
    if bad.any():
        raise DistilleryError(f"{path}: NaN/inf logits for ids {ids[bad][:5].tolist()}")
    return aligned
