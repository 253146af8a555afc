"""Several processes for one stage (``compute.processes``, started by ``python -m distillery.launch``).

``accelerate launch`` starts the processes and sets up their group (gloo on CPU, NCCL on GPUs); the Trainer
trains under it (DDP). This module is what the stages add around it: which process writes the outputs
(the main one), waiting for the others, and rows split across processes and gathered back by id.
With one process every function here is a no-op.
"""
from __future__ import annotations

import numpy as np

from .errors import DistilleryError


def state():
    """accelerate's ``PartialState``: the process group ``accelerate launch`` set up (CPU processes when the
    launcher set ``ACCELERATE_USE_CPU``), or a single process without it."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def processes() -> int:
    return state().num_processes


def is_main() -> bool:
    """True in the process that writes the outputs (models, logits, reports, DVCLive curves)."""
    return state().is_main_process


def barrier() -> None:
    """Wait until every process gets here."""
    state().wait_for_everyone()


def main_process_first():
    """A context: the main process runs the block first (e.g. cleans up or writes a cache), then the others."""
    return state().main_process_first()


def my_rows(n: int) -> np.ndarray:
    """This process's contiguous share of the row positions ``0..n-1`` (all of them with one process)."""
    with state().split_between_processes(list(range(n))) as rows:
        return np.asarray(rows, dtype=np.int64)


def gather_by_id(ids: np.ndarray, values: np.ndarray, expected_ids: np.ndarray, what: str) -> np.ndarray | None:
    """Every process's ``(ids, values)`` rows joined on the main process in the order of ``expected_ids``
    (None on the others). Raises ``DistilleryError`` if an id is lost, doubled or unexpected."""
    from accelerate.utils import gather_object

    parts = gather_object([(np.asarray(ids), np.asarray(values))])
    if not is_main():
        return None
    all_ids = np.concatenate([p[0] for p in parts])
    all_values = np.concatenate([p[1] for p in parts])
    unique, counts = np.unique(all_ids, return_counts=True)
    expected = np.unique(expected_ids)
    if (counts > 1).any() or len(unique) != len(expected) or not np.array_equal(unique, expected):
        raise DistilleryError(
            f"{what}: the {len(parts)} processes returned {len(all_ids)} rows for {len(expected_ids)} ids "
            f"(doubled: {unique[counts > 1][:5].tolist()}, lost: {np.setdiff1d(expected, unique)[:5].tolist()}, "
            f"unexpected: {np.setdiff1d(unique, expected)[:5].tolist()})")
    order = np.argsort(all_ids)
    return all_values[order[np.searchsorted(all_ids, expected_ids, sorter=order)]]
