"""Per-token teacher logits of a causal language model (``task: causal_lm``): one Parquet file per split.

A sequence of L tokens has L − 1 next-token targets: the logits at positions 0..L−2 (position p predicts token
p + 1). The file holds one row per such token, keyed by ``id`` (int64, the prepared row's id) and ``position``
(int32), sorted by (id, position), then either ``logits`` (V float32 per token, every logit), or, with
``teacher.logits_top_k`` = k, ``index`` (k int32 token ids, largest logit first, ties lower id first), ``top``
(their k float32 logits), ``rest_mean`` and ``rest_lse`` (float32: the mean and the log-sum-exp of the other
V − k logits), exactly what ``distillery.logits_top_k`` keeps per row; the vocabulary size V is in the file's
metadata (``distillery.vocab_size``). Lists are fixed-size and non-nullable, floats byte-stream-split, keys
delta-encoded, zstd: 8k + 8 bytes a token before compression (4V with every logit), the key nearly free.

``compress_tokens`` (torch, on the teacher's device) makes the columns, ``write_token_logits`` the file,
``load_token_logits`` joins it to a prepared split by (id, position), and ``TokenLogits.batch`` rebuilds a
batch's dense (B, L, V) targets for a loss at temperature T as ``logits_top_k.rebuild`` does.
"""
from __future__ import annotations

from collections.abc import Sequence
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


def write_token_logits(path: Path, ids: np.ndarray, positions: np.ndarray, parts: dict[str, np.ndarray],
                       vocab_size: int | None = None) -> StoredTokenLogits:
    """Save ``compress_tokens``' columns of tokens keyed by (``ids``, ``positions``) as one Parquet file
    (atomically), rows sorted by (id, position). ``vocab_size`` (the teacher's V) is required with top-k parts,
    which do not hold it; with full logits it is their width. Refuses repeated keys."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    ids, positions = np.asarray(ids), np.asarray(positions)
    if ids.ndim != 1 or positions.shape != ids.shape:
        raise ValueError(f"write_token_logits: ids {ids.shape} and positions {positions.shape} must be (N,)")
    if positions.size and (positions.min() < 0 or positions.max() > np.iinfo(np.int32).max):
        raise ValueError(f"write_token_logits: positions must be in 0..2^31-1, not "
                         f"{positions.min()}..{positions.max()}")
    n = len(ids)
    if set(parts) == {"logits"}:
        top_k, width = None, np.shape(parts["logits"])[1] if np.ndim(parts["logits"]) == 2 else -1
        if width < 0 or vocab_size not in (None, width):
            raise ValueError(f"write_token_logits: logits {np.shape(parts['logits'])}, vocab_size {vocab_size}")
        vocab_size = width
        shapes_ok = np.shape(parts["logits"])[0] == n
    elif set(parts) == set(TOP_K_COLUMNS):
        top_k = np.shape(parts["index"])[1] if np.ndim(parts["index"]) == 2 else -1
        if vocab_size is None:
            raise ValueError("write_token_logits: top-k parts need vocab_size (the teacher's vocabulary size)")
        check_token_top_k(top_k, vocab_size)
        shapes_ok = (np.shape(parts["index"]) == np.shape(parts["top"]) == (n, top_k)
                     and np.shape(parts["rest_mean"]) == np.shape(parts["rest_lse"]) == (n,))
    else:
        raise ValueError(f"write_token_logits: parts must be ['logits'] or {list(TOP_K_COLUMNS)}, not {sorted(parts)}")
    if not shapes_ok:
        raise ValueError(f"write_token_logits: parts {({k: np.shape(v) for k, v in parts.items()})} "
                         f"do not fit {n} keys")

    ids, positions = ids.astype(np.int64, copy=False), positions.astype(np.int32, copy=False)
    same_id = ids[1:] == ids[:-1]
    if not ((ids[1:] > ids[:-1]) | (same_id & (positions[1:] > positions[:-1]))).all():  # not sorted, or repeats
        order = np.lexsort((positions, ids))
        ids, positions = ids[order], positions[order]
        parts = {name: np.asarray(values)[order] for name, values in parts.items()}
        same_id = ids[1:] == ids[:-1]
    repeated = np.flatnonzero(same_id & (positions[1:] == positions[:-1])) + 1
    if repeated.size:
        raise DistilleryError(f"{path}: {repeated.size} repeated (id, position) keys, e.g. "
                              f"{_keys(ids[repeated], positions[repeated])}")

    columns = {"id": pa.array(ids), "position": pa.array(positions)}
    if top_k is None:
        columns["logits"] = _fixed_lists(parts["logits"], np.float32)
    else:
        columns |= {"index": _fixed_lists(parts["index"], np.int32), "top": _fixed_lists(parts["top"], np.float32),
                    "rest_mean": pa.array(np.asarray(parts["rest_mean"], np.float32)),
                    "rest_lse": pa.array(np.asarray(parts["rest_lse"], np.float32))}
    schema = pa.schema([pa.field(name, col.type, nullable=False) for name, col in columns.items()],
                       metadata={VOCAB_SIZE_KEY: str(vocab_size).encode()})
    table = pa.table(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **LOGITS_WRITE,
                       column_encoding={c: e for c, e in ENCODINGS.items() if c.split(".")[0] in columns})
    return StoredTokenLogits(n, top_k, int(vocab_size))


class TokenLogits:
    """A split's stored per-token teacher logits, in the split's row order: row i's tokens 0..lengths[i]−2 are
    entries ``offsets[i]..offsets[i+1]−1`` of the flat arrays in ``parts`` (``compress_tokens``' columns)."""

    key_bytes = KEY_BYTES

    def __init__(self, row_ids: np.ndarray, lengths: np.ndarray, vocab_size: int, parts: dict[str, np.ndarray]):
        self.row_ids, self.lengths = np.asarray(row_ids, np.int64), np.asarray(lengths, np.int64)
        self.vocab_size, self.parts = int(vocab_size), parts
        self.targets = np.maximum(self.lengths - 1, 0)  # next-token targets per row
        self.offsets = np.concatenate([[0], np.cumsum(self.targets)]).astype(np.int64)
        self.top_k: int | None = None if "logits" in parts else int(parts["index"].shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def bytes_per_token(self) -> int:
        """Payload per token, the key excluded: 8k + 8 with top k, 4V with every logit."""
        return payload_bytes(self.top_k, self.vocab_size)

    def batch(self, rows: Sequence[int], length: int, T: float = 1.0) -> torch.Tensor:
        """Dense float32 (len(rows), length, V) targets: row ``rows[b]`` (an index into the split's rows) at
        positions 0..lengths−2 as stored, top-k rows rebuilt for temperature ``T`` exactly as
        ``logits_top_k.rebuild`` does; zeros at every other position (the loss masks them)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.row_ids)):
            raise IndexError(f"TokenLogits.batch: rows must be in 0..{len(self.row_ids) - 1}, not {rows.tolist()}")
        counts, starts = self.targets[rows], self.offsets[rows]
        if counts.size and counts.max() > length:
            raise ValueError(f"TokenLogits.batch: length {length} < the {counts.max()} targets of a row")
        out = torch.empty(len(rows), length, self.vocab_size)
        dense = out.numpy()  # filled in place (the stored arrays may be read-only: no torch view of them)
        if self.top_k is None:
            stored = self.parts["logits"]
            for b, (start, count) in enumerate(zip(starts.tolist(), counts.tolist())):  # rows, not tokens
                dense[b, :count] = stored[start:start + count]
                dense[b, count:] = 0
            return out
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        src = np.repeat(starts, counts) + within  # the batch's tokens in the flat arrays
        top = self.parts["top"][src]
        rest = rest_logits(top, self.parts["rest_mean"][src], self.parts["rest_lse"][src], self.vocab_size, T)
        rest = rest.astype(np.float32)
        done = 0
        for b, count in enumerate(counts.tolist()):  # rows, not tokens
            dense[b, :count] = rest[done:done + count, None]
            dense[b, count:] = 0
            done += count
        token = np.repeat(np.arange(len(rows)) * length, counts) + within  # the tokens' rows of out (B·length, V)
        flat = token[:, None] * self.vocab_size + self.parts["index"][src]
        dense.reshape(-1)[flat.reshape(-1)] = top.reshape(-1)
        return out


def _column_lists(table: pa.Table, column: str, path: Path) -> np.ndarray:
    import pyarrow as pa

    values = table.column(column).combine_chunks()
    if not pa.types.is_fixed_size_list(values.type):
        raise DistilleryError(f"{path}: '{column}' is {values.type}, not a fixed-size list")
    return values.flatten().to_numpy(zero_copy_only=False).reshape(len(values), values.type.list_size)


def load_token_logits(path: Path, row_ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> TokenLogits:
    """The stored teacher logits of a split whose rows have ids ``row_ids`` and ``lengths[i]`` tokens, joined by
    (id, position), in the order of ``row_ids``. Refuses a missing file, a vocabulary other than ``vocab_size``,
    top-k ids outside it, missing, extra or repeated keys, and NaN/inf values, naming up to 5 offending keys."""
    import pyarrow.parquet as pq

    path = Path(path)
    row_ids, lengths = np.asarray(row_ids, np.int64), np.asarray(lengths, np.int64)
    if row_ids.ndim != 1 or lengths.shape != row_ids.shape or (lengths < 0).any():
        raise ValueError(f"load_token_logits: row_ids {row_ids.shape} and lengths {lengths.shape} must be (rows,), "
                         "lengths ≥ 0")
    if not path.exists():
        raise DistilleryError(f"{path}: token logits file not found (run the teacher_logits stage)")
    table = pq.read_table(path)
    full = "logits" in table.column_names
    for column in ("id", "position") + (("logits",) if full else TOP_K_COLUMNS):
        if column not in table.column_names:
            raise DistilleryError(f"{path}: no '{column}' column; it has {table.column_names}")
        if table.column(column).null_count:
            raise DistilleryError(f"{path}: '{column}' has {table.column(column).null_count} nulls")
    file_ids = table.column("id").to_numpy().astype(np.int64, copy=False)
    file_positions = table.column("position").to_numpy().astype(np.int64)

    if full:
        parts = {"logits": _column_lists(table, "logits", path).astype(np.float32, copy=False)}
        teacher_vocab = parts["logits"].shape[1]
    else:
        parts = {"index": _column_lists(table, "index", path), "top": _column_lists(table, "top", path),
                 "rest_mean": table.column("rest_mean").to_numpy().astype(np.float32, copy=False),
                 "rest_lse": table.column("rest_lse").to_numpy().astype(np.float32, copy=False)}
        teacher_vocab = int((table.schema.metadata or {}).get(VOCAB_SIZE_KEY, b"0"))
        if not teacher_vocab:
            raise DistilleryError(f"{path}: a top-k token logits file without its vocabulary size ({VOCAB_SIZE_KEY!r})")
    if teacher_vocab != vocab_size:
        raise DistilleryError(f"{path}: {'logits' if full else 'top-k logits'} of another vocabulary (teacher "
                              f"vocabulary {teacher_vocab}, data {vocab_size})")
    if not full:
        check_token_top_k(parts["index"].shape[1], vocab_size, f"{path}: top k")
        index = parts["index"]
        outside = (index < 0) | (index >= vocab_size)
        if outside.any():
            bad = outside.any(axis=1)
            raise DistilleryError(f"{path}: top-k token ids {np.unique(index[outside])[:EXAMPLES].tolist()} outside "
                                  f"the vocabulary (teacher vocabulary {teacher_vocab}, data {vocab_size}) at keys "
                                  f"{_keys(file_ids[bad], file_positions[bad])}")

    data = TokenLogits(row_ids, lengths, vocab_size, parts)
    split_order = np.argsort(row_ids, kind="stable")
    sorted_ids = row_ids[split_order]
    repeats = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if repeats.size:
        raise DistilleryError(f"{path}: the prepared split repeats ids {np.unique(repeats)[:EXAMPLES].tolist()}")
    if len(row_ids):
        row = split_order[np.minimum(np.searchsorted(sorted_ids, file_ids), len(row_ids) - 1)]
        valid = (row_ids[row] == file_ids) & (file_positions >= 0) & (file_positions < data.targets[row])
    else:
        row, valid = np.zeros(len(file_ids), np.int64), np.zeros(len(file_ids), bool)
    flat = data.offsets[row[valid]] + file_positions[valid]  # each valid key's entry in the split's order
    hits = np.bincount(flat, minlength=data.num_tokens)

    def split_keys(entries: np.ndarray) -> list[tuple[int, int]]:
        rows = np.searchsorted(data.offsets, entries[:EXAMPLES], side="right") - 1
        return _keys(row_ids[rows], entries[:EXAMPLES] - data.offsets[rows])

    repeated = np.flatnonzero(hits > 1)
    if repeated.size:
        raise DistilleryError(f"{path}: {repeated.size} repeated (id, position) keys, e.g. {split_keys(repeated)}")
    missing = np.flatnonzero(hits == 0)
    if missing.size or not valid.all():
        extra = ~valid
        raise DistilleryError(
            f"{path}: (id, position) keys do not match the prepared split (positions 0..length−2 of each row): "
            f"{missing.size} missing (e.g. {split_keys(missing)}), {int(extra.sum())} extra "
            f"(e.g. {_keys(file_ids[extra], file_positions[extra])})")

    if not (np.diff(flat) == 1).all():  # not already in the split's order
        place = np.empty(data.num_tokens, np.int64)
        place[flat] = np.arange(len(flat))
        data.parts = {name: values[place] for name, values in parts.items()}
    if full:
        bad = ~np.isfinite(data.parts["logits"]).all(axis=1)
    else:
        bad = ~(np.isfinite(data.parts["top"]).all(axis=1) & np.isfinite(data.parts["rest_mean"])
                & np.isfinite(data.parts["rest_lse"]))
    if bad.any():
        raise DistilleryError(f"{path}: NaN/inf logits at keys {split_keys(np.flatnonzero(bad))}")
    return data


def concat_token_logits(first: TokenLogits, second: TokenLogits) -> TokenLogits:
    """Two stores' rows one after the other (a training split and the teacher's generated sequences)."""
    if (first.vocab_size, first.top_k) != (second.vocab_size, second.top_k):
        raise ValueError(f"concat_token_logits: vocabulary {first.vocab_size} top-k {first.top_k} vs "
                         f"{second.vocab_size} top-k {second.top_k}")
    return TokenLogits(np.concatenate([first.row_ids, second.row_ids]), np.concatenate([first.lengths, second.lengths]),
                       first.vocab_size, {k: np.concatenate([first.parts[k], second.parts[k]]) for k in first.parts})
