"""Per-token teacher logits of a causal language model (``task: causal_lm``): one Parquet file per split.

A sequence of L tokens has L − 1 next-token targets: the logits at positions 0..L−2 (position p predicts token
p + 1). The file holds one row per such token, keyed by ``id`` (int64, the prepared row's id) and ``position``
(int32), sorted by (id, position) within each batch written (the teacher's batches: rows of similar length), then
either ``logits`` (V float32 per token, every logit), or, with ``teacher.logits_top_k`` = k, ``index`` (k int32
token ids, largest logit first, ties lower id first), ``top`` (their k float32 logits), ``rest_mean`` and
``rest_lse`` (float32: the mean and the log-sum-exp of the other V − k logits), exactly what
``distillery.logits_top_k`` keeps per row; the vocabulary size V is in the file's metadata
(``distillery.vocab_size``). Lists are fixed-size and non-nullable, floats byte-stream-split, keys delta-encoded,
zstd: 8k + 8 bytes a token before compression (4V with every logit), the key nearly free.

``compress_tokens`` (torch, on the teacher's device) makes the columns, ``token_logits_writer`` the file batch by
batch (``write_token_logits``: all at once), ``load_token_logits`` joins it to a prepared split by (id, position),
placing the values as it reads them, and ``TokenLogits.batch`` gives a batch's targets for a loss at temperature T:
every logit as dense (B, L, V), or the top k as parts that ``dense_targets`` rebuilds, on the training device, as
``logits_top_k.rebuild`` does. A split's logits are in memory once at most: never in the
stages that write them, once where a student trains on them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import DistilleryError
from .io import LOGITS_WRITE, atomic_path
from .logits_top_k import PARAM, rest_logits

if TYPE_CHECKING:  # imported where used, as in distillery.io: pyarrow is slow to import
    import pyarrow as pa

TOP_K_COLUMNS = ("index", "top", "rest_mean", "rest_lse")
VOCAB_SIZE_KEY = b"distillery.vocab_size"
KEY_BYTES = 12  # id int64 + position int32, per token, before compression
ENCODINGS = {"id": "DELTA_BINARY_PACKED", "position": "DELTA_BINARY_PACKED",
             "logits.list.element": "BYTE_STREAM_SPLIT", "top.list.element": "BYTE_STREAM_SPLIT",
             "rest_mean": "BYTE_STREAM_SPLIT", "rest_lse": "BYTE_STREAM_SPLIT"}
CHUNK_ELEMENTS = 2 ** 24  # compress_tokens works on at most this many logits at a time (~30 bytes each in flight)
EXAMPLES = 5  # offending keys named in an error


def check_token_top_k(k: int | None, vocab_size: int, where: str = PARAM) -> None:
    """Refuse a ``k`` that keeps nothing or every token: 1 ≤ k < V (null stores every logit)."""
    if k is not None and not 1 <= k < vocab_size:
        raise DistilleryError(f"{where} = {k}: must be between 1 and {vocab_size - 1} (the teacher's vocabulary has "
                              f"{vocab_size} tokens; null stores every logit)")


def payload_bytes(top_k: int | None, vocab_size: int) -> int:
    """Stored bytes per token, the key excluded, before compression: 8k + 8 with top k, else 4V."""
    return 4 * vocab_size if top_k is None else 8 * top_k + 8


def compress_tokens(logits: torch.Tensor, k: int | None) -> dict[str, np.ndarray]:
    """The columns of N tokens' (N, V) logits (any device, any float dtype): ``{"logits": (N, V) float32}`` with
    ``k`` None, else ``logits_top_k.compress``'s ``index`` (N, k) int32 (largest first, ties lower id first),
    ``top`` (N, k) float32, ``rest_mean`` and ``rest_lse`` (N,) float32, computed with torch in float64 on the
    tensor's device, a bounded number of logits at a time. Refuses a k outside 1..V−1 and NaN/inf logits."""
    if logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(f"compress_tokens: logits must be a 2-D float tensor, not {logits.dtype} "
                         f"{tuple(logits.shape)}")
    n, vocab = logits.shape
    check_token_top_k(k, vocab)
    logits = logits.detach()
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite)[:EXAMPLES, 0].tolist()
        raise DistilleryError(f"teacher logits: NaN/inf at tokens {bad} of a batch of {n}")
    if k is None:
        return {"logits": logits.to(torch.float32).contiguous().cpu().numpy()}
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in TOP_K_COLUMNS}
    device = logits.device if logits.device.type != "mps" else torch.device("cpu")  # MPS has no float64
    step = max(1, CHUNK_ELEMENTS // vocab)
    for start in range(0, n, step):  # chunks of tokens, each fully vectorised
        z = logits[start:start + step].to(device, torch.float64)
        kth = torch.topk(z, k, dim=1).values[:, -1:]
        above, tied = z > kth, z == kth
        need = k - above.sum(dim=1, keepdim=True)  # of the logits equal to the k-th largest, the lowest ids
        keep = above | (tied & (torch.cumsum(tied, dim=1, dtype=torch.int32) <= need))  # exactly k per token
        kept_ids = torch.nonzero(keep)[:, 1].view(-1, k)  # row-major: ascending ids
        top, order = torch.sort(z.gather(1, kept_ids), dim=1, descending=True, stable=True)
        parts["index"].append(kept_ids.gather(1, order).to(torch.int32))
        parts["top"].append(top.to(torch.float32))
        parts["rest_mean"].append((torch.where(keep, 0.0, z).sum(dim=1) / (vocab - k)).to(torch.float32))
        parts["rest_lse"].append(torch.logsumexp(torch.where(keep, -torch.inf, z), dim=1).to(torch.float32))
    empty = {"index": torch.zeros(0, k, dtype=torch.int32), "top": torch.zeros(0, k),
             "rest_mean": torch.zeros(0), "rest_lse": torch.zeros(0)}
    return {name: (torch.cat(chunks) if chunks else empty[name]).cpu().numpy() for name, chunks in parts.items()}


@dataclass(frozen=True)
class StoredTokenLogits:
    """What ``write_token_logits`` wrote: ``num_tokens`` tokens of ``vocab_size``, top ``top_k`` (None: all)."""

    num_tokens: int
    top_k: int | None
    vocab_size: int
    key_bytes: int = KEY_BYTES

    @property
    def bytes_per_token(self) -> int:
        return payload_bytes(self.top_k, self.vocab_size)


def _fixed_lists(values: np.ndarray, dtype) -> pa.FixedSizeListArray:
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _keys(ids: np.ndarray, positions: np.ndarray) -> list[tuple[int, int]]:
    return [(int(i), int(p)) for i, p in zip(ids[:EXAMPLES], positions[:EXAMPLES])]


def _checked(ids, positions, parts: dict[str, np.ndarray], vocab_size: int | None, where: str):
    """``ids`` (int64) and ``positions`` (int32) of N tokens, with the top k (None: every logit) and the vocabulary
    size of ``parts``, once their shapes are checked: ``compress_tokens``' columns for the N tokens."""
    ids, positions = np.asarray(ids), np.asarray(positions)
    if ids.ndim != 1 or positions.shape != ids.shape:
        raise ValueError(f"{where}: ids {ids.shape} and positions {positions.shape} must be (N,)")
    if positions.size and (positions.min() < 0 or positions.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{where}: positions must be in 0..2^31-1, not {positions.min()}..{positions.max()}")
    n = len(ids)
    if set(parts) == {"logits"}:
        top_k, width = None, np.shape(parts["logits"])[1] if np.ndim(parts["logits"]) == 2 else -1
        if width < 0 or vocab_size not in (None, width):
            raise ValueError(f"{where}: logits {np.shape(parts['logits'])}, vocab_size {vocab_size}")
        vocab_size = width
        shapes_ok = np.shape(parts["logits"])[0] == n
    elif set(parts) == set(TOP_K_COLUMNS):
        top_k = np.shape(parts["index"])[1] if np.ndim(parts["index"]) == 2 else -1
        if vocab_size is None:
            raise ValueError(f"{where}: top-k parts need vocab_size (the teacher's vocabulary size)")
        check_token_top_k(top_k, vocab_size)
        shapes_ok = (np.shape(parts["index"]) == np.shape(parts["top"]) == (n, top_k)
                     and np.shape(parts["rest_mean"]) == np.shape(parts["rest_lse"]) == (n,))
    else:
        raise ValueError(f"{where}: parts must be ['logits'] or {list(TOP_K_COLUMNS)}, not {sorted(parts)}")
    if not shapes_ok:
        raise ValueError(f"{where}: parts {({k: np.shape(v) for k, v in parts.items()})} do not fit {n} keys")
    return ids.astype(np.int64, copy=False), positions.astype(np.int32, copy=False), top_k, int(vocab_size)


def _in_key_order(ids: np.ndarray, positions: np.ndarray, parts: dict[str, np.ndarray]):
    """The tokens sorted by (id, position) (as they are when already sorted)."""
    same_id = ids[1:] == ids[:-1]
    if ((ids[1:] > ids[:-1]) | (same_id & (positions[1:] >= positions[:-1]))).all():
        return ids, positions, parts
    order = np.lexsort((positions, ids))
    return ids[order], positions[order], {name: np.asarray(values)[order] for name, values in parts.items()}


class TokenLogitsWriter:
    """Writes a split's per-token logits to one Parquet file batch after batch, so they are never all in memory:
    ``write`` takes ``compress_tokens``' columns of some tokens (stored sorted by (id, position) within the batch,
    the batches in the order written), row groups of about ``ROW_GROUP_BYTES`` go to the file as they fill, and
    ``finish`` refuses repeated keys (it keeps the keys, 12 bytes a token) and closes the file. Use
    ``token_logits_writer``, which moves the file into place only once it is finished."""

    ROW_GROUP_BYTES = 2 ** 27

    def __init__(self, path: Path, vocab_size: int, top_k: int | None, name: Path | None = None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        check_token_top_k(top_k, vocab_size)
        self.name, self.vocab_size, self.top_k = Path(name or path), int(vocab_size), top_k
        if top_k is None:
            fields = [("logits", pa.list_(pa.float32(), vocab_size))]
        else:
            fields = [("index", pa.list_(pa.int32(), top_k)), ("top", pa.list_(pa.float32(), top_k)),
                      ("rest_mean", pa.float32()), ("rest_lse", pa.float32())]
        self.schema = pa.schema([pa.field(column, kind, nullable=False)
                                 for column, kind in [("id", pa.int64()), ("position", pa.int32()), *fields]],
                                metadata={VOCAB_SIZE_KEY: str(vocab_size).encode()})
        self._file = pq.ParquetWriter(path, self.schema, **LOGITS_WRITE, column_encoding={
            c: e for c, e in ENCODINGS.items() if c.split(".")[0] in self.schema.names})
        self._keys: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.stored: StoredTokenLogits | None = None

    def write(self, ids: np.ndarray, positions: np.ndarray, parts: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        ids, positions, top_k, _ = _checked(ids, positions, parts, self.vocab_size, "TokenLogitsWriter.write")
        if top_k != self.top_k:
            raise ValueError(f"TokenLogitsWriter.write: top k {top_k} in a file of top k {self.top_k}")
        ids, positions, parts = _in_key_order(ids, positions, parts)
        columns = {"id": pa.array(ids), "position": pa.array(positions)}
        if top_k is None:
            columns["logits"] = _fixed_lists(parts["logits"], np.float32)
        else:
            columns |= {"index": _fixed_lists(parts["index"], np.int32), "top": _fixed_lists(parts["top"], np.float32),
                        "rest_mean": pa.array(np.asarray(parts["rest_mean"], np.float32)),
                        "rest_lse": pa.array(np.asarray(parts["rest_lse"], np.float32))}
        self._keys.append((ids, positions))
        self._pending.append(pa.table(columns, schema=self.schema))
        self._pending_bytes += len(ids) * (KEY_BYTES + payload_bytes(self.top_k, self.vocab_size))
        if self._pending_bytes >= self.ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._file.write_table(pa.concat_tables(self._pending), row_group_size=sum(map(len, self._pending)))
        self._pending, self._pending_bytes = [], 0

    def finish(self) -> StoredTokenLogits:
        """Write what is pending, refuse repeated (id, position) keys, close the file."""
        self._flush()
        self._file.close()
        ids = np.concatenate([k[0] for k in self._keys]) if self._keys else np.zeros(0, np.int64)
        positions = np.concatenate([k[1] for k in self._keys]) if self._keys else np.zeros(0, np.int32)
        order = np.lexsort((positions, ids))
        ids, positions = ids[order], positions[order]
        repeated = np.flatnonzero((ids[1:] == ids[:-1]) & (positions[1:] == positions[:-1])) + 1
        if repeated.size:
            raise DistilleryError(f"{self.name}: {repeated.size} repeated (id, position) keys, e.g. "
                                  f"{_keys(ids[repeated], positions[repeated])}")
        self.stored = StoredTokenLogits(len(ids), self.top_k, self.vocab_size)
        return self.stored

    def close(self) -> None:
        """Close the file without the checks (after an error)."""
        self._file.close()


@contextlib.contextmanager
def token_logits_writer(path: Path, vocab_size: int, top_k: int | None) -> Iterator[TokenLogitsWriter]:
    """A ``TokenLogitsWriter`` whose file appears at ``path`` once finished (atomically); an error in the block or
    in ``finish`` leaves no file. Its ``stored`` says what was written."""
    with atomic_path(path) as tmp:
        writer = TokenLogitsWriter(tmp, vocab_size, top_k, name=path)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.close()
            raise


def write_token_logits(path: Path, ids: np.ndarray, positions: np.ndarray, parts: dict[str, np.ndarray],
                       vocab_size: int | None = None) -> StoredTokenLogits:
    """Save ``compress_tokens``' columns of tokens keyed by (``ids``, ``positions``), all in memory, as one Parquet
    file (atomically), rows sorted by (id, position). ``vocab_size`` (the teacher's V) is required with top-k parts,
    which do not hold it; with full logits it is their width. Refuses repeated keys."""
    ids, positions, top_k, vocab_size = _checked(ids, positions, parts, vocab_size, "write_token_logits")
    with token_logits_writer(path, vocab_size, top_k) as writer:
        writer.write(ids, positions, parts)
    return writer.stored


class TokenLogits:
    """A split's stored per-token teacher logits, in the split's row order: row i's target positions
    starts[i]..lengths[i]−2 (``starts`` 0 without prompts) are entries ``offsets[i]..offsets[i+1]−1`` of the flat
    arrays in ``parts`` (``compress_tokens``' columns)."""

    key_bytes = KEY_BYTES

    def __init__(self, row_ids: np.ndarray, lengths: np.ndarray, vocab_size: int, parts: dict[str, np.ndarray],
                 starts: np.ndarray | None = None):
        self.row_ids, self.lengths = np.asarray(row_ids, np.int64), np.asarray(lengths, np.int64)
        self.starts = np.zeros_like(self.lengths) if starts is None else np.asarray(starts, np.int64)
        self.vocab_size, self.parts = int(vocab_size), parts
        self.targets = np.maximum(self.lengths - 1 - self.starts, 0)  # next-token targets per row
        self.offsets = np.concatenate([[0], np.cumsum(self.targets)]).astype(np.int64)
        self.top_k: int | None = None if "logits" in parts else int(parts["index"].shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def bytes_per_token(self) -> int:
        """Payload per token, the key excluded: 8k + 8 with top k, 4V with every logit."""
        return payload_bytes(self.top_k, self.vocab_size)

    def batch(self, rows: Sequence[int], length: int, T: float = 1.0) -> torch.Tensor | dict[str, torch.Tensor]:
        """Row ``rows[b]``'s (an index into the split's rows) targets at its target positions for a loss at
        temperature ``T``, zeros at every other position (the loss masks them): with every logit stored, dense
        float32 (len(rows), length, V); with the top k, ``top_k_parts`` (what ``dense_targets`` rebuilds on the
        training device: k + 1 numbers a token cross to it instead of V)."""
        if self.top_k is not None:
            return self.top_k_parts(rows, length, T)
        counts, entries, first = self._spans(rows, length)
        out = torch.empty(len(counts), length, self.vocab_size)
        dense = out.numpy()  # filled in place (the stored arrays may be read-only: no torch view of them)
        stored = self.parts["logits"]
        for b, (entry, count, at) in enumerate(zip(entries.tolist(), counts.tolist(), first.tolist())):  # rows
            dense[b, :at] = 0
            dense[b, at:at + count] = stored[entry:entry + count]
            dense[b, at + count:] = 0
        return out

    def top_k_parts(self, rows: Sequence[int], length: int, T: float = 1.0) -> dict[str, torch.Tensor]:
        """Stored top-k targets as ``index`` (B, length, k) int64, ``top`` (B, length, k) float32 and ``rest``
        (B, length) float32, the logit ``logits_top_k.rest_logits`` gives every other token at ``T``; zeros at
        positions without a target. ``dense_targets`` of them is what ``logits_top_k.rebuild`` gives."""
        counts, entries, first = self._spans(rows, length)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        src = np.repeat(entries, counts) + within  # the batch's tokens in the flat arrays
        where = (torch.from_numpy(np.repeat(np.arange(len(counts)), counts)),
                 torch.from_numpy(np.repeat(first, counts) + within))
        top = self.parts["top"][src]
        parts = {"index": torch.zeros(len(counts), length, self.top_k, dtype=torch.int64),
                 "top": torch.zeros(len(counts), length, self.top_k), "rest": torch.zeros(len(counts), length)}
        parts["index"][where] = torch.from_numpy(self.parts["index"][src].astype(np.int64))
        parts["top"][where] = torch.from_numpy(np.ascontiguousarray(top, np.float32))
        rest = rest_logits(top, self.parts["rest_mean"][src], self.parts["rest_lse"][src], self.vocab_size, T)
        parts["rest"][where] = torch.from_numpy(rest.astype(np.float32))
        return parts

    def _spans(self, rows: Sequence[int], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's number of targets, its first entry in the flat arrays and its first target position, checked
        against ``length``."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.row_ids)):
            raise IndexError(f"TokenLogits.batch: rows must be in 0..{len(self.row_ids) - 1}, not {rows.tolist()}")
        counts, entries, first = self.targets[rows], self.offsets[rows], self.starts[rows]
        if counts.size and (counts + first).max() > length:
            raise ValueError(f"TokenLogits.batch: length {length} < the {(counts + first).max()} positions of a row")
        return counts, entries, first


def dense_targets(parts: dict[str, torch.Tensor], vocab_size: int) -> torch.Tensor:
    """Dense (..., V) targets from ``TokenLogits.top_k_parts`` (any leading shape, on any device): ``rest`` in every
    column, ``top`` at ``index``; all zeros where ``top_k_parts`` put zeros."""
    rest = parts["rest"]
    dense = rest.unsqueeze(-1).expand(*rest.shape, vocab_size).contiguous()
    return dense.scatter_(-1, parts["index"], parts["top"])


def _column_lists(values, column: str, path: Path) -> np.ndarray:
    """A fixed-size list column (of a table or a record batch) as an (N, list size) array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_fixed_size_list(values.type):
        raise DistilleryError(f"{path}: '{column}' is {values.type}, not a fixed-size list")
    return values.flatten().to_numpy(zero_copy_only=False).reshape(len(values), values.type.list_size)


def _list_size(schema, column: str, path: Path) -> int:
    import pyarrow as pa

    kind = schema.field(column).type
    if not pa.types.is_fixed_size_list(kind):
        raise DistilleryError(f"{path}: '{column}' is {kind}, not a fixed-size list")
    return kind.list_size


READ_BYTES = 2 ** 26  # load_token_logits reads the values this many bytes at a time


def load_token_logits(path: Path, row_ids: np.ndarray, lengths: np.ndarray, vocab_size: int,
                      starts: np.ndarray | None = None) -> TokenLogits:
    """The stored teacher logits of a split whose rows have ids ``row_ids`` and ``lengths[i]`` tokens, targets from
    position ``starts[i]`` on (0 where not given; ``data.prepared.target_starts``), joined by (id, position), in the
    order of ``row_ids``. Refuses a missing file, a vocabulary other than ``vocab_size``,
    top-k ids outside it, missing, extra or repeated keys, and NaN/inf values, naming up to 5 offending keys.
    The keys are read first; the values then go straight to their place in the split's order, ``READ_BYTES`` at a
    time, so the logits are in memory once."""
    import pyarrow.parquet as pq

    path = Path(path)
    row_ids, lengths = np.asarray(row_ids, np.int64), np.asarray(lengths, np.int64)
    if row_ids.ndim != 1 or lengths.shape != row_ids.shape or (lengths < 0).any():
        raise ValueError(f"load_token_logits: row_ids {row_ids.shape} and lengths {lengths.shape} must be (rows,), "
                         "lengths ≥ 0")
    if not path.exists():
        raise DistilleryError(f"{path}: token logits file not found (run the teacher_logits stage)")
    stored = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BYTES)  # no whole column chunks in memory
    schema = stored.schema_arrow
    full = "logits" in schema.names
    values = ("logits",) if full else TOP_K_COLUMNS
    for column in ("id", "position") + values:
        if column not in schema.names:
            raise DistilleryError(f"{path}: no '{column}' column; it has {schema.names}")
    keys = stored.read(columns=["id", "position"])
    for column in ("id", "position"):
        if keys.column(column).null_count:
            raise DistilleryError(f"{path}: '{column}' has {keys.column(column).null_count} nulls")
    file_ids = keys.column("id").to_numpy().astype(np.int64, copy=False)
    file_positions = keys.column("position").to_numpy().astype(np.int64)

    if full:
        teacher_vocab = k = _list_size(schema, "logits", path)
    else:
        k = _list_size(schema, "index", path)
        if _list_size(schema, "top", path) != k:
            raise DistilleryError(f"{path}: 'top' holds {_list_size(schema, 'top', path)} logits a token, 'index' {k}")
        teacher_vocab = int((schema.metadata or {}).get(VOCAB_SIZE_KEY, b"0"))
        if not teacher_vocab:
            raise DistilleryError(f"{path}: a top-k token logits file without its vocabulary size ({VOCAB_SIZE_KEY!r})")
    if teacher_vocab != vocab_size:
        raise DistilleryError(f"{path}: {'logits' if full else 'top-k logits'} of another vocabulary (teacher "
                              f"vocabulary {teacher_vocab}, data {vocab_size})")
    if not full:
        check_token_top_k(k, vocab_size, f"{path}: top k")

    starts = np.zeros_like(lengths) if starts is None else np.asarray(starts, np.int64)
    targets = np.maximum(lengths - 1 - starts, 0)
    n = int(targets.sum())
    parts = {"logits": np.empty((n, vocab_size), np.float32)} if full else {
        "index": np.empty((n, k), np.int32), "top": np.empty((n, k), np.float32),
        "rest_mean": np.empty(n, np.float32), "rest_lse": np.empty(n, np.float32)}
    data = TokenLogits(row_ids, lengths, vocab_size, parts, starts)
    split_order = np.argsort(row_ids, kind="stable")
    sorted_ids = row_ids[split_order]
    repeats = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if repeats.size:
        raise DistilleryError(f"{path}: the prepared split repeats ids {np.unique(repeats)[:EXAMPLES].tolist()}")
    if len(row_ids):
        row = split_order[np.minimum(np.searchsorted(sorted_ids, file_ids), len(row_ids) - 1)]
        within = file_positions - starts[row]
        valid = (row_ids[row] == file_ids) & (within >= 0) & (within < data.targets[row])
    else:
        row, valid, within = np.zeros(len(file_ids), np.int64), np.zeros(len(file_ids), bool), file_positions
    flat = data.offsets[row[valid]] + within[valid]  # each valid key's entry in the split's order
    hits = np.bincount(flat, minlength=data.num_tokens)

    def split_keys(entries: np.ndarray) -> list[tuple[int, int]]:
        rows = np.searchsorted(data.offsets, entries[:EXAMPLES], side="right") - 1
        return _keys(row_ids[rows], entries[:EXAMPLES] - data.offsets[rows] + starts[rows])

    repeated = np.flatnonzero(hits > 1)
    if repeated.size:
        raise DistilleryError(f"{path}: {repeated.size} repeated (id, position) keys, e.g. {split_keys(repeated)}")
    missing = np.flatnonzero(hits == 0)
    if missing.size or not valid.all():
        extra = ~valid
        raise DistilleryError(
            f"{path}: (id, position) keys do not match the prepared split (target positions of each row: 0, or its "
            "prompt's last, to length−2): "
            f"{missing.size} missing (e.g. {split_keys(missing)}), {int(extra.sum())} extra "
            f"(e.g. {_keys(file_ids[extra], file_positions[extra])})")

    done, bad, outside = 0, [], []
    rows_at_once = max(1, READ_BYTES // payload_bytes(None if full else k, vocab_size))
    for batch in stored.iter_batches(batch_size=rows_at_once, columns=list(values)):
        place = flat[done:done + batch.num_rows]
        got = {}
        for column in values:
            read = batch.column(column)
            if read.null_count:
                raise DistilleryError(f"{path}: '{column}' has nulls")
            got[column] = _column_lists(read, column, path) if parts[column].ndim == 2 else read.to_numpy()
            parts[column][place] = got[column]
        if full:
            finite = np.isfinite(got["logits"]).all(axis=1)
        else:
            outside.append(place[((got["index"] < 0) | (got["index"] >= vocab_size)).any(axis=1)])
            finite = np.isfinite(got["top"]).all(axis=1) & np.isfinite(got["rest_mean"]) & np.isfinite(got["rest_lse"])
        bad.append(place[~finite])
        done += batch.num_rows
    outside = np.sort(np.concatenate(outside)) if outside else np.zeros(0, np.int64)
    if outside.size:
        index = parts["index"][outside]
        wrong = np.unique(index[(index < 0) | (index >= vocab_size)])[:EXAMPLES].tolist()
        raise DistilleryError(f"{path}: top-k token ids {wrong} outside the vocabulary (teacher vocabulary "
                              f"{teacher_vocab}, data {vocab_size}) at keys {split_keys(outside)}")
    bad = np.sort(np.concatenate(bad)) if bad else np.zeros(0, np.int64)
    if bad.size:
        raise DistilleryError(f"{path}: NaN/inf logits at keys {split_keys(bad)}")
    return data


def concat_token_logits(first: TokenLogits, second: TokenLogits) -> TokenLogits:
    """Two stores' rows one after the other (a training split and the teacher's generated sequences)."""
    if (first.vocab_size, first.top_k) != (second.vocab_size, second.top_k):
        raise ValueError(f"concat_token_logits: vocabulary {first.vocab_size} top-k {first.top_k} vs "
                         f"{second.vocab_size} top-k {second.top_k}")
    return TokenLogits(np.concatenate([first.row_ids, second.row_ids]), np.concatenate([first.lengths, second.lengths]),
                       first.vocab_size, {k: np.concatenate([first.parts[k], second.parts[k]]) for k in first.parts},
                       np.concatenate([first.starts, second.starts]))
