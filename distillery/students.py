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
from .models import build_model, build_text_model, copy_teacher_layers, text_tokenizer
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
    teacher_dir: Path = Path("models/teacher"),
) -> None:
    """Train one student per ``train.seeds`` and save them under ``out_dir/seed_<s>/`` (atomically, all or none).

    Each seed trains in its own checkpoint directory (see ``train_once``), so a run killed in
    the middle resumes the interrupted seed and skips the seeds it had finished. Text students
    tokenize with their own tokenizer; with ``init_from_teacher_layers`` they start from the
    teacher in ``teacher_dir``.
    """
    check_precision(params["train"]["precision"], "train.precision")
    train, val = prepared.splits["train"], prepared.splits["validation"]
    spec = params["student"]["model"]
    logits = teacher_logits if kind == "kd" else {"train": None, "validation": None}
    if kind == "kd":
        kd = params["kd"]
        loss_fn, loss_kwargs = METHODS[kd["method"]], {"T": kd["T"], "alpha": kd["alpha"]}
        run_parts = [kd, teacher_logits["train"], teacher_logits["validation"]]
    else:
        loss_fn, loss_kwargs = hard_terms, {}
        run_parts = []
    if spec["arch"] == "hf":
        make_model, text = text_student(spec, prepared, teacher_dir)
        from .tokenization import tokenize, training_columns

        tokenizer = text["tokenizer"]
        train_data, eval_data = (
            training_columns(tokenize(prepared.splits[name].dataset, tokenizer, f"student-{name}"), logits[name])
            for name in ("train", "validation"))
        run_parts.append(text["key"])
    else:
        make_model, text = (lambda: build_model(spec, prepared.input_shape, prepared.label_names)), {}
        train_data = TensorDictDataset.from_split(train, logits["train"])
        eval_data = TensorDictDataset.from_split(val, logits["validation"])
    with_curves = live_root is not None
    runs = {}
    for seed in params["train"]["seeds"]:
        run_id = fingerprint(
            kind, params["student"], params["train"], seed, train.ids, train.labels, val.ids, with_curves, *run_parts
        )
        runs[seed] = CHECKPOINT_ROOT / kind / run_id
        train_once(
            runs[seed],
            make_model,
            seed=seed,
            with_curves=with_curves,
            train_data=train_data,
            eval_data=eval_data,
            train_params=params["train"],
            loss_fn=loss_fn,
            loss_kwargs=loss_kwargs,
            **{k: v for k, v in text.items() if k != "key"},
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


def text_student(spec: dict, prepared: Prepared, teacher_dir: Path):
    """``make_model`` for a text student and the text-only ``train_once`` arguments (its tokenizer and
    the padding collator), plus ``key``: what the run fingerprint needs beyond the params (the teacher
    the student copies layers from)."""
    from .models import load_model, saved_tokenizer
    from .teacher import text_collator
    from .tokenization import tokenizer_key

    layers = spec["init_from_teacher_layers"]
    if not layers:
        tokenizer = text_tokenizer(spec, "student.model")

        def make_model():
            return build_text_model(spec, prepared.label_names, "student.model")[0]

        key = None
    else:
        teacher = load_model(teacher_dir)
        tokenizer = saved_tokenizer(teacher_dir)
        if tokenizer is None:
            raise DistilleryError(f"student.model.init_from_teacher_layers: {teacher_dir} is not a text model")
        tokenizer.model_max_length = spec["max_length"]
        overrides = {**(spec["config"] or {}), "num_hidden_layers": len(layers)}
        if "model_type" in overrides and overrides["model_type"] != teacher.config.model_type:
            raise DistilleryError(f"student.model.config.model_type = {overrides['model_type']!r}: the teacher is "
                                  f"{teacher.config.model_type!r}; layers copy only between the same architecture")
        overrides.pop("model_type", None)
        if teacher.config.model_type == "distilbert":
            overrides["n_layers"] = overrides.pop("num_hidden_layers")
        student_spec = {**spec, "config": overrides, "tokenizer": str(teacher_dir)}

        def make_model():
            model, _ = build_text_model(student_spec, prepared.label_names, "student.model",
                                        base_config=teacher.config)
            copy_teacher_layers(model, teacher, layers, "student.model.init_from_teacher_layers")
            return model

        key = fingerprint(*(v.numpy() for v in teacher.state_dict().values()))
    return make_model, {"tokenizer": tokenizer, "data_collator": text_collator(tokenizer),
                        "key": [key, tokenizer_key(tokenizer)]}
