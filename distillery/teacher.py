"""The teacher: trained here with early stopping, or a ready checkpoint recorded by reference."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .data import Prepared
from .errors import DistilleryError
from .io import atomic_dir
from .losses import hard_terms
from .models import build_model, check_safetensors, load_model
from .training import CHECKPOINT_ROOT, CURVES, TensorDictDataset, check_precision, fingerprint, train_once

REFERENCE_FILE = "teacher.json"


def check_checkpoint(checkpoint: str, prepared: Prepared, trust_remote_code: bool = False) -> None:
    """Fail fast if ``teacher.checkpoint`` cannot be read or predicts another number of labels."""
    from transformers import AutoConfig

    check_safetensors(checkpoint)
    try:
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"teacher.checkpoint = {checkpoint!r}: cannot load its config: {exc}") from None
    if config.num_labels != prepared.num_labels:
        raise DistilleryError(
            f"teacher.checkpoint = {checkpoint!r}: the model has {config.num_labels} labels "
            f"but the data has {prepared.num_labels} ({', '.join(prepared.label_names)})"
        )


def build_teacher(params: dict, prepared: Prepared, out_dir: Path, live_dir: Path | None = None) -> None:
    """Write ``out_dir``: a trained teacher (safetensors), or a reference to ``teacher.checkpoint``."""
    tp = params["teacher"]
    if tp["checkpoint"]:
        check_checkpoint(tp["checkpoint"], prepared, tp["trust_remote_code"])
        with atomic_dir(out_dir) as tmp:
            reference = {"checkpoint": tp["checkpoint"], "trust_remote_code": tp["trust_remote_code"]}
            (tmp / REFERENCE_FILE).write_text(json.dumps(reference, indent=2) + "\n")
        return
    check_precision(tp["train"]["precision"], "teacher.train.precision")
    train, val = prepared.splits["train"], prepared.splits["validation"]
    run_dir = CHECKPOINT_ROOT / "teacher" / fingerprint(tp, train.ids, train.labels, val.ids, live_dir is not None)
    finished = train_once(
        run_dir,
        lambda: build_model(tp["model"], prepared.input_shape, prepared.label_names),
        seed=tp["seed"],
        with_curves=live_dir is not None,
        train_data=TensorDictDataset.from_split(train),
        eval_data=TensorDictDataset.from_split(val),
        train_params=tp["train"],
        loss_fn=hard_terms,
        early_stopping_patience=tp["train"]["early_stopping_patience"],
    )
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(finished, tmp, dirs_exist_ok=True)
    if live_dir is not None:
        with atomic_dir(live_dir) as tmp:
            shutil.copytree(run_dir / CURVES, tmp, dirs_exist_ok=True)
    shutil.rmtree(run_dir)


def load_teacher(path: Path):
    """The teacher model from ``models/teacher`` (following a recorded checkpoint reference)."""
    path = Path(path)
    reference = path / REFERENCE_FILE
    if reference.exists():
        info = json.loads(reference.read_text())
        return load_model(info["checkpoint"], trust_remote_code=info["trust_remote_code"])
    return load_model(path)
