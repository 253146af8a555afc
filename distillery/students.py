"""Students: one per seed, trained with a distillation method (``kd``) or on hard labels (``hard``).

Both kinds share the architecture, initial weights, data order and number of steps for a
given seed; only the loss differs. So ``kd.alpha = 0`` reproduces the hard student exactly.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .data import Prepared
from .errors import DistilleryError
from .io import atomic_dir, read_logits
from .losses import METHODS, hard_terms
from .models import build_model
from .training import (
    CHECKPOINT_ROOT,
    CURVES,
    FINISHED_MODEL,
    TensorDictDataset,
    check_precision,
    fingerprint,
    train_once,
)

KINDS = ("kd", "hard")


def seed_dir(root: Path, seed: int) -> Path:
    return Path(root) / f"seed_{seed}"


def seeds_in(root: Path) -> list[int]:
    """The seeds of the students saved under ``root`` (``seed_<s>`` directories), ascending."""
    seeds = sorted(int(p.name.removeprefix("seed_")) for p in Path(root).glob("seed_*") if p.is_dir())
    if not seeds:
        raise DistilleryError(f"{root}: no seed_<s> student directories (run the training stage first)")
    return seeds


def load_teacher_logits(logits_dir: Path, prepared: Prepared, splits=("train", "validation")) -> dict[str, np.ndarray]:
    """Teacher logits for each split, joined to the prepared rows by id and checked (see ``read_logits``)."""
    return {
        name: read_logits(Path(logits_dir) / f"{name}.parquet", prepared.splits[name].ids, prepared.num_labels)
        for name in splits
    }


def train_students(
    kind: str,
    params: dict,
    prepared: Prepared,
    out_dir: Path,
    teacher_logits: dict[str, np.ndarray] | None = None,
    live_root: Path | None = None,
) -> None:
    """Train one student per ``train.seeds`` and save them under ``out_dir/seed_<s>/`` (atomically, all or none).

    Each seed trains in its own checkpoint directory (see ``train_once``), so a run killed in
    the middle resumes the interrupted seed and skips the seeds it had finished.
    """
    check_precision(params["train"]["precision"], "train.precision")
    train, val = prepared.splits["train"], prepared.splits["validation"]
    if kind == "kd":
        kd = params["kd"]
        loss_fn, loss_kwargs = METHODS[kd["method"]], {"T": kd["T"], "alpha": kd["alpha"]}
        train_data = TensorDictDataset.from_split(train, teacher_logits["train"])
        eval_data = TensorDictDataset.from_split(val, teacher_logits["validation"])
        run_parts = [kd, teacher_logits["train"], teacher_logits["validation"]]
    else:
        loss_fn, loss_kwargs = hard_terms, {}
        train_data, eval_data = TensorDictDataset.from_split(train), TensorDictDataset.from_split(val)
        run_parts = []
    with_curves = live_root is not None
    runs = {}
    for seed in params["train"]["seeds"]:
        run_id = fingerprint(
            kind, params["student"], params["train"], seed, train.ids, train.labels, val.ids, with_curves, *run_parts
        )
        runs[seed] = CHECKPOINT_ROOT / kind / run_id
        train_once(
            runs[seed],
            lambda: build_model(params["student"]["model"], prepared.input_shape, prepared.label_names),
            seed=seed,
            with_curves=with_curves,
            train_data=train_data,
            eval_data=eval_data,
            train_params=params["train"],
            loss_fn=loss_fn,
            loss_kwargs=loss_kwargs,
        )
    with atomic_dir(out_dir) as tmp:
        for seed, run_dir in runs.items():
            shutil.copytree(run_dir / FINISHED_MODEL, seed_dir(tmp, seed))
    if with_curves:
        with atomic_dir(live_root) as tmp:
            for seed, run_dir in runs.items():
                shutil.copytree(run_dir / CURVES, seed_dir(tmp, seed))
    for run_dir in runs.values():
        shutil.rmtree(run_dir)
