"""Training: one ``Trainer`` subclass for every model and every distillation method.

``DistillationTrainer.compute_loss`` is the single override point: it calls a loss function
from ``distillery.losses.METHODS`` with the student's logits, the teacher's stored logits
(when the batch has them) and the labels. Checkpoints, progress bars, mixed precision and
multi-GPU (``accelerate launch``) come from ``transformers``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .losses import LossTerms

CHECKPOINT_ROOT = Path(".cache/checkpoints")
TRAINER_STATE = "trainer_state.json"
logger = logging.getLogger(__name__)


class TensorDictDataset(torch.utils.data.Dataset):
    """Equal-length tensors served as dict batches; ``__getitems__`` fetches a whole batch at once."""

    def __init__(self, **columns: torch.Tensor):
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        self.columns = columns

    @classmethod
    def from_split(cls, split, teacher_logits: np.ndarray | None = None) -> "TensorDictDataset":
        """Inputs and labels of a prepared ``Split``, plus the teacher's logits when given (aligned by id)."""
        columns = {"features": torch.from_numpy(split.inputs), "labels": torch.from_numpy(split.labels)}
        if teacher_logits is not None:
            columns["teacher_logits"] = torch.from_numpy(teacher_logits)
        return cls(**columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, index):
        return {k: v[index] for k, v in self.columns.items()}

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices)
        return {k: v[index] for k, v in self.columns.items()}


def collate(batch):
    """Batches from ``TensorDictDataset.__getitems__`` are ready; lists of rows are stacked."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.stack([row[k] for row in batch]) for k in batch[0]}


def accuracy_metric(eval_pred) -> dict:
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


class DistillationTrainer(Trainer):
    """A ``Trainer`` whose loss is ``loss_fn(student_logits, teacher_logits, labels, **loss_kwargs)``.

    The loss's named terms (for KD: ``ce`` and ``kd``) are averaged between two logging steps
    and logged beside ``loss``.
    """

    loss_is_scaled_for_ga = False  # loss_fn returns a per-batch mean

    def __init__(self, *args, loss_fn: Callable[..., LossTerms], loss_kwargs: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.loss_kwargs = loss_kwargs or {}
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        teacher_logits = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        result = self.loss_fn(outputs.logits, teacher_logits, labels, **self.loss_kwargs)
        if model.training:
            for name, value in result.terms.items():
                self._term_sums[name] += value.detach().item()
            self._term_count += 1
        return (result.loss, outputs) if return_outputs else result.loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self._term_count:
            for name, total in self._term_sums.items():
                logs[name] = round(total / self._term_count, 6)
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, start_time)


def _live_callback(live_dir: Path, resume_step: int | None):
    """DVCLive's Trainer callback, writing under ``live_dir``, with rows keyed by the Trainer's global step.

    ``dvcyaml=None`` keeps DVCLive from touching ``dvc.yaml``; ``save_dvc_exp=False`` from making experiments.
    When resuming from the checkpoint at ``resume_step`` the curves logged up to it are kept and continued;
    rows logged after it (before the crash) are dropped, since the resumed run logs those steps again.
    """
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    class GlobalStepDVCLiveCallback(DVCLiveCallback):
        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if self.live is not None:
                self.live.step = state.global_step  # the library counts log calls instead
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    if resume_step is not None:
        truncate_curves(live_dir, resume_step)
    live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=resume_step is not None)
    return GlobalStepDVCLiveCallback(live=live)


def truncate_curves(live_dir: Path, last_step: int) -> None:
    """Drop the rows with ``step > last_step`` from every DVCLive metric file under ``live_dir``."""
    import pandas as pd

    from .io import atomic_path

    for tsv in Path(live_dir).glob("plots/metrics/**/*.tsv"):
        table = pd.read_csv(tsv, sep="\t")
        kept = table[table["step"] <= last_step]
        if len(kept) < len(table):
            with atomic_path(tsv) as tmp:
                kept.to_csv(tmp, sep="\t", index=False)


def last_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest ``checkpoint-<step>`` under ``checkpoint_dir`` that was saved completely, else None.

    The Trainer writes ``trainer_state.json`` last and not atomically, so a checkpoint killed while
    being saved lacks it or holds broken JSON; such checkpoints are deleted.
    """
    if not Path(checkpoint_dir).is_dir():
        return None
    candidates = []
    for path in Path(checkpoint_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if path.is_dir() and step.isdigit():
            candidates.append((int(step), path))
    for step, path in sorted(candidates, reverse=True):
        try:
            saved_step = json.loads((path / TRAINER_STATE).read_text())["global_step"]
        except (OSError, ValueError, KeyError):
            saved_step = None
        if saved_step == step:
            return path
        logger.warning("ignoring the incomplete checkpoint %s (interrupted while being saved)", path)
        shutil.rmtree(path)
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return json.loads((Path(checkpoint) / TRAINER_STATE).read_text())["global_step"]


def check_precision(precision: str, where: str) -> None:
    """Fail before any work when mixed precision is asked for on a machine without a CUDA GPU."""
    from .errors import DistilleryError

    if precision in ("fp16", "bf16") and not torch.cuda.is_available():
        raise DistilleryError(f"{where} = {precision!r}: needs a CUDA GPU and none is available; use 'auto' or 'fp32'")


def _precision_flags(precision: str) -> dict:
    if precision == "auto":
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able values and arrays: names a run's checkpoint directory."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def train_model(
    model,
    train_data: TensorDictDataset,
    eval_data: TensorDictDataset,
    train_params: dict,
    seed: int,
    loss_fn: Callable[..., LossTerms],
    loss_kwargs: dict | None = None,
    checkpoint_dir: Path | None = None,
    live_dir: Path | None = None,
    early_stopping_patience: int | None = None,
    data_collator: Callable = collate,
    tokenizer=None,
):
    """Train ``model`` in place with the ``Trainer`` and return it.

    Resumes from the newest complete checkpoint in ``checkpoint_dir`` if one is there (a
    crashed run: same weights, optimizer, RNG state and data position), and deletes the
    checkpoints once training ends. ``live_dir`` receives DVCLive training curves, continued
    on resume. With ``early_stopping_patience`` the best checkpoint on validation
    accuracy is kept (teacher); without it the full ``max_steps`` budget runs (students).
    """
    checkpoint_dir = Path(checkpoint_dir or CHECKPOINT_ROOT / "scratch")
    early = early_stopping_patience is not None
    save_steps = train_params["eval_steps"] if early else train_params["save_steps"]
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=train_params["max_steps"],
        per_device_train_batch_size=train_params["batch_size"],
        per_device_eval_batch_size=max(256, train_params["batch_size"]),
        learning_rate=train_params["learning_rate"],
        weight_decay=train_params["weight_decay"],
        max_grad_norm=train_params["max_grad_norm"],
        lr_scheduler_type=train_params["lr_scheduler"],
        warmup_steps=train_params["warmup_steps"],
        optim="adamw_torch",
        eval_strategy="steps",
        eval_steps=train_params["eval_steps"],
        logging_strategy="steps",
        logging_steps=train_params["logging_steps"],
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2 if early else 1,
        load_best_model_at_end=early,
        metric_for_best_model="accuracy" if early else None,
        greater_is_better=True if early else None,
        seed=seed,
        data_seed=seed,
        full_determinism=train_params["full_determinism"],
        report_to="none",
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        **_precision_flags(train_params["precision"]),
    )
    resume = last_complete_checkpoint(checkpoint_dir)
    resume_step = None if resume is None else checkpoint_step(resume)
    if resume is not None:
        logger.info("resuming from %s: step %d of %d", resume, resume_step, train_params["max_steps"])
    callbacks = []
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    if live_dir is not None:
        callbacks.append(_live_callback(live_dir, resume_step))
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        data_collator=data_collator,
        processing_class=tokenizer,
        compute_metrics=accuracy_metric,
        callbacks=callbacks,
        loss_fn=loss_fn,
        loss_kwargs=loss_kwargs,
    )
    trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return trainer.model


FINISHED_MODEL, CURVES, TRAINER_OUTPUT = "model", "live", "trainer"


def train_once(
    run_dir: Path,
    make_model: Callable[[], "torch.nn.Module"],
    seed: int,
    with_curves: bool,
    tokenizer=None,
    **train_kwargs,
) -> Path:
    """Train one model in ``run_dir`` and return the directory of the finished model (``run_dir/model``).

    ``run_dir`` (under ``CHECKPOINT_ROOT``, outside every DVC output, keyed by a ``fingerprint``
    of everything the training depends on) holds the Trainer's checkpoints, the DVCLive curves
    (``run_dir/live``) and, once training ends, the saved model. A run killed part-way resumes
    from its last checkpoint; a model finished by a run killed later (e.g. during the next
    seed) is reused as is. The caller copies the results to its outputs, then deletes ``run_dir``.
    """
    from .io import atomic_dir

    finished = Path(run_dir) / FINISHED_MODEL
    if finished.is_dir():
        logger.info("reusing %s, finished before an interruption", finished)
        return finished
    seeded(seed)
    model = train_model(
        make_model(),
        seed=seed,
        checkpoint_dir=Path(run_dir) / TRAINER_OUTPUT,
        live_dir=Path(run_dir) / CURVES if with_curves else None,
        tokenizer=tokenizer,
        **train_kwargs,
    )
    with atomic_dir(finished) as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:  # text models: saved together, so every later stage tokenizes alike
            tokenizer.save_pretrained(tmp)
    return finished


def seeded(seed: int) -> None:
    """Seed Python, NumPy and torch before building a model, so its initial weights depend on the seed only."""
    set_seed(seed)
