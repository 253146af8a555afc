"""The teacher: trained here with early stopping, or a ready checkpoint recorded by reference."""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..data.augment import Jittered, check_jitter
from ..data.checkpoints import resolve_pretrained, save_tokenizer
from ..data.inputs import input_record, save_record
from ..data.sources import digest
from ..distributed import is_main
from ..errors import DistilleryError
from ..io import atomic_dir, fingerprint
from ..models.zoo import build_model, check_model_fits, load_model
from ..data.prepared import Prepared
from .runs import CHECKPOINT_ROOT, CURVES, copy_selection, data_key, run_environment, save_timings, seeded, train_once
from ..models.text import build_text_model, check_checkpoint_head, saved_tokenizer

REFERENCE_FILE = "teacher.json"
COUNT_FORWARDS = "DISTILLERY_COUNT_FORWARDS"  # env: a file every loaded teacher appends its forward passes to


@dataclass(frozen=True)
class TeacherPaths:
    """Where a teacher's files live: ``name`` None is the teacher (``teacher``), else ``teachers.<name>``."""

    name: str | None = None

    @property
    def model(self) -> Path:
        return Path("models/teacher") if self.name is None else Path("models/teachers") / self.name

    @property
    def curves(self) -> Path:
        return Path("reports/training/teacher") if self.name is None else Path("reports/training/teachers") / self.name

    @property
    def logits(self) -> Path:
        return Path("data/teacher_logits") if self.name is None else Path("data/teachers") / self.name


def teacher_block(params: dict, name: str | None) -> dict:
    """The validated params of the teacher (``name`` None) or of ``teachers.<name>``."""
    if name is None:
        return params["teacher"]
    if name not in params["teachers"]:
        known = ", ".join(params["teachers"]) or "none"
        raise DistilleryError(f"teachers.{name}: no such teacher in params.yaml (teachers: {known})")
    return params["teachers"][name]


def build_teacher(params: dict, prepared: Prepared, out_dir: Path, live_dir: Path | None = None,
                  name: str | None = None) -> None:
    """Write ``out_dir``: a trained teacher (safetensors), or a reference to ``teacher.checkpoint``; ``name``
    picks one of ``teachers`` instead of the teacher."""
    tp = teacher_block(params, name)
    where = "teacher" if name is None else f"teachers.{name}"
    if not prepared.is_text:  # the MLP/CNN blocks against the prepared shape: the student's too, before any training
        for block, role in ((tp, where), (params["student"], "student")):
            if role == "student" or not block["checkpoint"]:
                check_model_fits(block["model"], prepared.input_shape, f"{role}.model")
    if tp["checkpoint"]:
        check_checkpoint_head(tp["checkpoint"], prepared.label_names, f"{where}.checkpoint", tp["trust_remote_code"])
        if not is_main():  # several processes: the main one writes the outputs
            return
        with atomic_dir(out_dir) as tmp:
            reference = {"checkpoint": tp["checkpoint"], "trust_remote_code": tp["trust_remote_code"]}
            if Path(tp["checkpoint"]).exists():  # a local folder replaced at the same path changes this output,
                reference["sha256"] = digest(Path(tp["checkpoint"]))["sha256"]  # so its logits are made again
            (tmp / REFERENCE_FILE).write_text(json.dumps(reference, indent=2) + "\n")
            save_record(input_record(prepared), tmp)
        return
    if tp["model"]["arch"] == "hf" and not tp["finetune"]:
        check_checkpoint_head(tp["model"]["pretrained"], prepared.label_names, f"{where}.model.pretrained",
                              tp["trust_remote_code"])
        model, tokenizer = build_text_model(tp["model"], prepared.label_names, f"{where}.model",
                                            tp["trust_remote_code"], keep_head=True)
        if not is_main():
            return
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp)
            save_tokenizer(tokenizer, tmp)
            save_record(input_record(prepared), tmp)
        return
    from .trainer import TensorDictDataset, check_precision  # the Trainer: not for the stages that load a teacher

    check_precision(tp["train"]["precision"], f"{where}.train.precision")
    train, val = prepared.splits["train"], prepared.splits["validation"]
    run_dir = CHECKPOINT_ROOT / "teacher" / fingerprint(tp, run_environment(params), data_key(prepared, train, val),
                                                        live_dir is not None)
    if tp["model"]["arch"] == "hf":
        from ..models.tokenization import tokenize, training_columns

        seeded(tp["seed"])
        model, tokenizer = build_text_model(tp["model"], prepared.label_names, f"{where}.model",
                                            tp["trust_remote_code"])
        data = {name: training_columns(tokenize(prepared.splits[name].dataset, tokenizer, f"teacher-{name}"),
                                       by_length=name == "validation")
                for name in ("train", "validation")}
        inputs = dict(make_model=lambda: model, tokenizer=tokenizer, data_collator=text_collator(tokenizer))
    else:
        check_jitter(tp["train"]["jitter"], prepared.input_shape, f"{where}.train")
        data = {"train": TensorDictDataset.from_split(train), "validation": TensorDictDataset.from_split(val)}
        if tp["train"]["jitter"]:  # training batches only: validation (early stopping) sees the images as they are
            data["train"] = Jittered(data["train"], tp["train"]["jitter"])
        inputs = dict(make_model=lambda: build_model(tp["model"], prepared.input_shape, prepared.label_names,
                                                     f"{where}.model"))
    finished = train_once(
        run_dir,
        seed=tp["seed"],
        with_curves=live_dir is not None,
        train_data=data["train"],
        eval_data=data["validation"],
        train_params=tp["train"],
        early_stopping_patience=tp["train"]["early_stopping_patience"],
        **inputs,
    )
    if is_main():
        publish_teacher(run_dir, finished, out_dir, live_dir, input_record(prepared))


def publish_teacher(run_dir: Path, finished: Path, out_dir: Path, live_dir: Path | None,
                    inputs: dict | None = None) -> None:
    """Copy a finished teacher run to ``out_dir`` with the record of its ``inputs`` (``data.inputs``), and its
    curves, selection and timings to ``live_dir``; delete the run."""
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(finished, tmp, dirs_exist_ok=True)
        save_record(inputs, tmp)
    if live_dir is not None:
        with atomic_dir(live_dir) as tmp:
            shutil.copytree(run_dir / CURVES, tmp, dirs_exist_ok=True)
            copy_selection(run_dir, tmp)
        save_timings(run_dir, live_dir)
    shutil.rmtree(run_dir)


def text_collator(tokenizer):
    """Dynamic padding: each batch padded to its longest row."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def load_teacher_and_tokenizer(path: Path):
    """The teacher and its tokenizer (None for array models) from ``models/teacher``; with the environment
    variable ``DISTILLERY_COUNT_FORWARDS`` set, its forward passes are logged to that file (``count_forwards``)."""
    path = Path(path)
    reference = path / REFERENCE_FILE
    if reference.exists():
        info = json.loads(reference.read_text())
        target, trust = resolve_pretrained(info["checkpoint"]), info["trust_remote_code"]  # pypi: folders too
        tokenizer = saved_tokenizer(target, trust)  # a directory's or a Hub id's; None for array models
        model = load_model(target, trust_remote_code=trust)
    else:
        model, tokenizer = load_model(path), saved_tokenizer(path)
    if os.environ.get(COUNT_FORWARDS):
        count_forwards(model, Path(os.environ[COUNT_FORWARDS]))
    return model, tokenizer


def count_forwards(model, log: Path) -> None:
    """Append a line ``<script name>\t<rows>`` to ``log`` on every forward pass of ``model`` (how benchmarks
    count the teacher's passes: set ``DISTILLERY_COUNT_FORWARDS`` to the file)."""
    script = Path(sys.argv[0]).stem

    def hook(module, args, kwargs, output):
        with open(log, "a") as f:
            f.write(f"{script}\t{len(output.logits)}\n")

    model.register_forward_hook(hook, with_kwargs=True)
