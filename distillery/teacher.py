"""The teacher: trained here with early stopping, or a ready checkpoint recorded by reference."""
from __future__ import annotations

import json
from pathlib import Path

from .data import Prepared
from .errors import DistilleryError
from .io import atomic_dir
from .losses import hard_terms
from .models import build_model, load_model
from .training import CHECKPOINT_ROOT, TensorDictDataset, fingerprint, seeded, train_model

REFERENCE_FILE = "teacher.json"


def check_checkpoint(checkpoint: str, prepared: Prepared, trust_remote_code: bool = False) -> None:
    """Fail fast if ``teacher.checkpoint`` cannot be read or predicts another number of labels."""
    from transformers import AutoConfig

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
    train, val = prepared.splits["train"], prepared.splits["validation"]
    seeded(tp["seed"])
    model = build_model(tp["model"], prepared.input_shape, prepared.label_names)
    run_id = fingerprint(tp, train.ids, train.labels, val.ids)
    model = train_model(
        model,
        TensorDictDataset.from_split(train),
        TensorDictDataset.from_split(val),
        tp["train"],
        seed=tp["seed"],
        loss_fn=hard_terms,
        checkpoint_dir=CHECKPOINT_ROOT / "teacher" / run_id,
        live_dir=live_dir,
        early_stopping_patience=tp["train"]["early_stopping_patience"],
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)


def load_teacher(path: Path):
    """The teacher model from ``models/teacher`` (following a recorded checkpoint reference)."""
    path = Path(path)
    reference = path / REFERENCE_FILE
    if reference.exists():
        info = json.loads(reference.read_text())
        return load_model(info["checkpoint"], trust_remote_code=info["trust_remote_code"])
    return load_model(path)
