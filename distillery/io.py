"""Atomic file and directory writes, JSON, and the teacher-logits files (keyed by id)."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import DistilleryError

TIMINGS_ROOT = Path("reports/timings")  # git-ignored, no DVC output: timings differ run to run (README)
DISTILL_SECONDS_LINE = "distill: the students trained in "  # + "<seconds> s": the distill stage's log, read by
                                                             # distillery.sweep_report from `dvc queue logs`


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of an earlier write of ``path`` that was killed (no ``finally`` ran)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it into place, else delete it.

    A crash leaves either the old file or nothing at ``path``, never a half-written one
    (a temporary left by ``kill -9`` is removed by the next write of the same path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Like ``atomic_path`` for a directory: fill the yielded empty dir, then it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
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


def write_logits(path: str | Path, ids: np.ndarray, logits: np.ndarray) -> None:
    """Save raw logits as Parquet: ``id`` (int64) and ``logits`` (list of float32)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    logits = np.ascontiguousarray(logits, dtype=np.float32)
    table = pa.table(
        {
            "id": pa.array(np.asarray(ids, dtype=np.int64)),
            "logits": pa.ListArray.from_arrays(
                pa.array(np.arange(0, logits.size + 1, logits.shape[1], dtype=np.int32)),
                pa.array(logits.reshape(-1)),
            ),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_logits(path: str | Path, ids: np.ndarray, num_labels: int | None = None) -> np.ndarray:
    """Logits from ``path`` in the order of ``ids`` (joined by id, never by row position).

    Raises ``DistilleryError`` if ids are missing or extra, repeated, the width differs from
    ``num_labels``, or any value is NaN/inf.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise DistilleryError(f"{path}: logits file not found (run the teacher_logits stage)")
    table = pq.read_table(path)
    for column in ("id", "logits"):
        if column not in table.column_names:
            raise DistilleryError(f"{path}: no '{column}' column; it has {table.column_names}")
    file_ids = table.column("id").to_numpy()
    rows = table.column("logits").combine_chunks()
    widths = np.unique(np.diff(rows.offsets.to_numpy()))
    if len(widths) != 1:
        raise DistilleryError(f"{path}: rows have different numbers of logits: {widths.tolist()}")
    width = int(widths[0])
    if num_labels is not None and width != num_labels:
        raise DistilleryError(f"{path}: logits have {width} classes but the data has {num_labels} labels")
    values = rows.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(file_ids), width)

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
