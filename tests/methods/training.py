"""Train tiny students with a method on the digits data, in-process (the distill stage's own function)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from distillery.methods import HARD, get_method
from distillery.models.zoo import load_model
from distillery.training.runs import seeded
from distillery.training.students import seed_dir, train_students
from distillery.training.teacher import build_teacher

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits


def setup_teacher(prepared, root: Path, **groups) -> Path:
    """A tiny trained teacher in ``root/models/teacher`` and fake stored logits in ``root/logits``."""
    params = make_params(**groups)
    build_teacher(params, prepared, root / "models/teacher")
    (root / "logits").mkdir(parents=True, exist_ok=True)
    fake_teacher_logits(prepared, root / "logits")
    return root


def train(method: str | None, prepared, root: Path, name: str, **groups) -> Path:
    """Students of ``method`` (None: the hard baseline) under ``root/name``, curves in ``root/name-live``."""
    params = make_params(**groups)
    if method is not None:
        params = make_params(**{**groups, "kd": {**groups.get("kd", {}), "method": method}})
    out = root / name
    train_students(HARD if method is None else get_method(method), params, prepared, out,
                   live_root=root / f"{name}-live", logits_dir=root / "logits", teacher_dir=root / "models/teacher")
    return out


def weights(root: Path, seed: int = 0) -> dict:
    return {k: v.clone() for k, v in load_model(seed_dir(root, seed)).state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def logged(root: Path, name: str, term: str, seed: int = 0) -> np.ndarray:
    """The curve of a logged term (``loss``, ``ce``, ...) of one seed."""
    return pd.read_csv(root / f"{name}-live" / f"seed_{seed}" / "plots/metrics" / f"{term}.tsv", sep="\t")[term].to_numpy()


__all__ = ["logged", "same_weights", "seeded", "setup_teacher", "train", "weights"]
