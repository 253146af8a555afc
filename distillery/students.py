"""Students: one per seed, trained with a distillation method (the ``distill`` stage) or on hard
labels (``hard_baseline``, the method ``HARD``).

Both share the architecture, initial weights, data order and number of steps for a given seed;
only the loss (and what it needs) differs. So a method with ``kd.alpha = 0`` reproduces the hard
student exactly. What a method gets is what it declares (``Method.needs``): stored teacher logits
joined by id, a live teacher, intermediate outputs, trainable helpers or peers.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .errors import DistilleryError
from .io import atomic_dir, read_logits
from .methods import HARD, Method
from .models import build_model
from .prepared import Prepared
from .runs import CHECKPOINT_ROOT, CURVES, FINISHED_MODEL, fingerprint, seeded, train_once
from .text_models import build_text_model, copy_teacher_layers, text_tokenizer
from .training import Distillee, TensorDictDataset, check_precision

TEACHER_DIR = Path("models/teacher")
TEACHERS_LOGITS = Path("data/teachers")  # teachers.<name>: data/teachers/<name>/<split>.parquet


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


def ensemble_logits(method: Method, hp: dict, prepared: Prepared, logits_dir: Path, teachers_root: Path,
                    names: list[str]) -> dict[str, np.ndarray]:
    """The targets of a method that combines several teachers: the teacher's and every ``teachers.<name>``'s
    stored logits (joined by id), stacked (N, K, C) and combined by ``method.combine`` with each teacher's
    validation accuracy."""
    per_teacher = [load_teacher_logits(logits_dir, prepared)]
    per_teacher += [load_teacher_logits(Path(teachers_root) / name, prepared) for name in names]
    labels = prepared.splits["validation"].labels
    accuracies = np.array([(t["validation"].argmax(1) == labels).mean() for t in per_teacher])
    return {split: method.combine(np.stack([t[split] for t in per_teacher], axis=1), accuracies, hp)
            for split in ("train", "validation")}


def train_students(
    method: Method,
    params: dict,
    prepared: Prepared,
    out_dir: Path,
    live_root: Path | None = None,
    logits_dir: Path | None = None,
    teacher_dir: Path = TEACHER_DIR,
    teachers_logits_root: Path = TEACHERS_LOGITS,
) -> None:
    """Train one student per ``train.seeds`` with ``method`` and save them under ``out_dir/seed_<s>/``
    (atomically, all or none); DVCLive curves under ``live_root/seed_<s>/`` when given.

    Each seed trains in its own checkpoint directory (see ``train_once``), so a run killed in the
    middle resumes the interrupted seed and skips the seeds it had finished. The method is checked
    against the models before any training. Text students tokenize with their own tokenizer; with
    ``init_from_teacher_layers`` they start from the teacher in ``teacher_dir``.
    """
    check_precision(params["train"]["precision"], "train.precision")
    hp = method.hyperparams(params["kd"]) if method is not HARD else {}
    train, val = prepared.splits["train"], prepared.splits["validation"]
    spec = params["student"]["model"]
    logits = {"train": None, "validation": None}
    run_parts: list = [method.name, hp]
    if "teacher_logits" in method.needs:
        logits = load_teacher_logits(logits_dir, prepared)
    if "teachers" in method.needs:
        logits = ensemble_logits(method, hp, prepared, logits_dir, teachers_logits_root, list(params["teachers"]))
    if logits["train"] is not None:
        run_parts += [logits["train"], logits["validation"]]
    if spec["arch"] == "hf":
        make_student, text = text_student(spec, prepared, teacher_dir)
        run_parts.append(text.pop("key"))
    else:
        make_student, text = (lambda: build_model(spec, prepared.input_shape, prepared.label_names)), {}
    teacher = prepare_teacher(method, hp, make_student, text.get("tokenizer"), teacher_dir)
    if teacher is not None and "live_teacher" in method.needs:
        run_parts.append(fingerprint(*(v.numpy() for v in teacher.state_dict().values())))
    live_teacher = teacher if "live_teacher" in method.needs else None

    if spec["arch"] == "hf":
        from .tokenization import tokenize, training_columns

        train_data, eval_data = (
            training_columns(tokenize(prepared.splits[name].dataset, text["tokenizer"], f"student-{name}"),
                             logits[name])
            for name in ("train", "validation"))
    else:
        train_data = TensorDictDataset.from_split(train, logits["train"])
        eval_data = TensorDictDataset.from_split(val, logits["validation"])

    def make_model():
        student = prepare_student(make_student(), method)
        peers = [prepare_student(make_student(), method) for _ in range(hp.get("peers", 1))] \
            if "peers" in method.needs else []
        helpers = method.make_helpers(student, teacher, hp) if method.make_helpers else None
        return student if helpers is None and not peers else Distillee(student, helpers, peers)

    with_curves = live_root is not None
    runs = {}
    for seed in params["train"]["seeds"]:
        # {"model": ...}: the value params["student"] had before student.quantize, which only evaluate reads
        run_id = fingerprint({"model": params["student"]["model"]}, params["train"], seed, train.ids, train.labels,
                             val.ids, with_curves, *run_parts)
        runs[seed] = CHECKPOINT_ROOT / method.name / run_id
        train_once(runs[seed], make_model, seed=seed, with_curves=with_curves, train_data=train_data,
                   eval_data=eval_data, train_params=params["train"], method=method, hyperparams=hp,
                   teacher=live_teacher, **text)
    with atomic_dir(out_dir) as tmp:
        for seed, run_dir in runs.items():
            shutil.copytree(run_dir / FINISHED_MODEL, seed_dir(tmp, seed))
    if with_curves:
        with atomic_dir(live_root) as tmp:
            for seed, run_dir in runs.items():
                shutil.copytree(run_dir / CURVES, seed_dir(tmp, seed))
    for run_dir in runs.values():
        shutil.rmtree(run_dir)


def prepare_student(model, method: Method):
    """Text models return attention maps only with the eager attention implementation."""
    if "attentions" in method.needs and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    return model


def prepare_teacher(method: Method, hp: dict, make_student, student_tokenizer, teacher_dir: Path):
    """The teacher when the method runs it live or checks the models against it (eval mode, frozen), after
    ``method.check`` passed on a probe student; None when the method needs neither."""
    if "live_teacher" not in method.needs and method.check is None:
        return None
    from .teacher import load_teacher_and_tokenizer

    teacher = None
    if method.teacher_needed or method.check is not None:
        if not Path(teacher_dir).exists():
            raise DistilleryError(f"kd.method = {method.name!r} needs the teacher: {teacher_dir} not found "
                                  "(run the teacher stage)")
        teacher, teacher_tokenizer = load_teacher_and_tokenizer(teacher_dir)
        teacher = prepare_student(teacher, method).eval().requires_grad_(False)
        if "live_teacher" in method.needs and student_tokenizer is not None:
            from .tokenization import tokenizer_key

            if teacher_tokenizer is None or tokenizer_key(teacher_tokenizer) != tokenizer_key(student_tokenizer):
                raise DistilleryError(
                    f"kd.method = {method.name!r} runs the teacher on the student's batches, so the student must "
                    "use the teacher's tokenizer: set student.model.tokenizer to the teacher's, or use "
                    "student.model.init_from_teacher_layers")
    if method.check is not None:
        seeded(0)
        problem = method.check(prepare_student(make_student(), method), teacher, hp)
        if problem:
            raise DistilleryError(f"kd.method = {method.name!r}: {problem}")
    return teacher


def text_student(spec: dict, prepared: Prepared, teacher_dir: Path):
    """``make_model`` for a text student and the text-only ``train_once`` arguments (its tokenizer and
    the padding collator), plus ``key``: what the run fingerprint needs beyond the params (the teacher
    the student copies layers from)."""
    from .models import load_model
    from .teacher import text_collator
    from .text_models import saved_tokenizer
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
