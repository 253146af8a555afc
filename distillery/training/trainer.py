"""Training: one ``Trainer`` subclass for every model and every distillation method.

``DistillationTrainer.compute_loss`` is the single override point: it runs the student (and,
when the method declares them, its peers and a live teacher), then hands the method's loss what
the method needs (``distillery.methods.StepInputs``). Checkpoints, progress bars, mixed
precision and multi-GPU (``accelerate launch``) come from ``transformers``. The run lifecycle
(checkpoint directories, resume, curves) is ``distillery.training.runs``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from ..methods.base import HARD, Method, StepInputs


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


class Distillee(nn.Module):
    """What the Trainer optimises when a method trains more than the student: the student, its
    trainable ``helpers`` (saved in checkpoints, so a resumed run continues them, but not with the
    student) and its ``peers`` (a cohort; the student is peer 0). ``forward`` runs the student
    and, during training, every peer (``peer_outputs``)."""

    def __init__(self, student: nn.Module, helpers: nn.Module | None = None, peers: list[nn.Module] = ()):
        super().__init__()
        self.student = student
        self.helpers = helpers
        self.peers = nn.ModuleList(peers)
        self.config = student.config
        self.main_input_name = getattr(student, "main_input_name", "input_ids")

    def forward(self, **inputs):
        output = self.student(**inputs)
        if self.training and len(self.peers):
            output["peer_outputs"] = [peer(**inputs) for peer in self.peers]
        return output


class DistillationTrainer(Trainer):
    """A ``Trainer`` whose loss is ``method.loss(StepInputs, hyperparams)``.

    The loss's named terms (for KD: ``ce`` and ``kd``) are averaged between two logging steps
    and logged beside ``loss``.
    """

    loss_is_scaled_for_ga = False  # the losses return per-batch means

    def __init__(self, *args, method: Method = HARD, hyperparams: dict | None = None, teacher=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        self.hyperparams = hyperparams or {}
        self.teacher = None if teacher is None else teacher.to(self.args.device)  # once, not per step
        self.output_flags = {f"output_{need}": True for need in ("hidden_states", "attentions") if need in method.needs}
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        stored_logits = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs, **self.output_flags)
        teacher_out = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_out = self.teacher(**inputs, **self.output_flags)
        step_inputs = StepInputs(
            student=outputs,
            labels=labels,
            teacher_logits=stored_logits if teacher_out is None else teacher_out.logits,
            teacher=teacher_out,
            helpers=getattr(self.model, "helpers", None),  # self.model: the unwrapped model (unwrap_model per step
                                                           # costs ~1 ms in accelerate's package checks)
            peers=outputs.get("peer_outputs"),
            step=self.state.global_step,
            max_steps=self.state.max_steps or 1,
            inputs=inputs,
        )
        result = self.method.loss(step_inputs, self.hyperparams)
        if model.training:  # summed on the device in float64 (no sync per step), read at logging time
            for name, value in result.terms.items():
                self._term_sums[name] = self._term_sums.get(name, 0.0) + value.detach().double()
            self._term_count += 1
        return (result.loss, SequenceClassifierOutput(logits=outputs.logits)) if return_outputs else result.loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self._term_count:
            names = list(self._term_sums)
            totals = torch.stack([self._term_sums[name] for name in names])
            if self.accelerator.num_processes > 1:  # every process calls log at the same step
                totals = self.accelerator.reduce(totals, reduction="mean")
            for name, total in zip(names, totals.tolist()):
                logs[name] = round(total / self._term_count, 6)
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, start_time)


def check_precision(precision: str, where: str) -> None:
    """Fail before any work when mixed precision is asked for on a machine without a CUDA GPU."""
    from ..errors import DistilleryError

    if precision in ("fp16", "bf16") and not torch.cuda.is_available():
        raise DistilleryError(f"{where} = {precision!r}: needs a CUDA GPU and none is available; use 'auto' or 'fp32'")


def _precision_flags(precision: str) -> dict:
    if precision == "auto":
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def train_model(
    model,
    train_data,
    eval_data,
    train_params: dict,
    seed: int,
    checkpoint_dir: Path,
    method: Method = HARD,
    hyperparams: dict | None = None,
    teacher=None,
    resume_from: Path | None = None,
    callbacks: list = (),
    early_stopping_patience: int | None = None,
    select: str = "last",
    data_collator: Callable = collate,
    tokenizer=None,
):
    """Train ``model`` in place with the ``Trainer`` and return it.

    Checkpoints go to ``checkpoint_dir``; ``resume_from`` continues a crashed run from one of them
    (same weights, optimizer, RNG state and data position). With ``early_stopping_patience`` training stops
    once validation accuracy has not improved for that many evaluations (teacher); without it the full
    ``max_steps`` budget runs (students). The model returned is the one at the best validation accuracy (ties:
    the earlier step) with early stopping or ``select="best"`` (a checkpoint is then saved at every evaluation),
    else the one at the last step.
    """
    from ..distributed import processes

    early = early_stopping_patience is not None
    best = early or select == "best"
    save_steps = train_params["eval_steps"] if best else train_params["save_steps"]
    n = processes()
    # several processes: batch_size rows per step in all, split between them (accelerate's split_batches), so
    # each step sees the same rows as with one process
    several = {"accelerator_config": {"split_batches": True}} if n > 1 else {}
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=train_params["max_steps"],
        per_device_train_batch_size=train_params["batch_size"],
        per_device_eval_batch_size=-(-max(256, train_params["batch_size"]) // n) * n,  # a multiple of n
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
        save_total_limit=2 if best else 1,
        load_best_model_at_end=best,
        metric_for_best_model="accuracy" if best else None,
        greater_is_better=True if best else None,
        seed=seed,
        data_seed=seed,
        full_determinism=train_params["full_determinism"],
        report_to="none",
        remove_unused_columns=False,
        label_names=["labels"],  # a Distillee's forward(**inputs) hides them: evaluation scores it too
        dataloader_pin_memory=False,
        **_precision_flags(train_params["precision"]),
        **several,
    )
    callbacks = list(callbacks)
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        data_collator=data_collator,
        processing_class=tokenizer,
        compute_metrics=accuracy_metric,
        callbacks=callbacks,
        method=method,
        hyperparams=hyperparams,
        teacher=teacher,
    )
    trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    return trainer.model
