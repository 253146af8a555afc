"""Training: one ``Trainer`` subclass for every model and every distillation method.

``DistillationTrainer.compute_loss`` is the single override point: it runs the student (and,
when the method declares them, its peers and a live teacher, on the batch or on the student's own samples), then
hands the method's loss what the method needs (``distillery.methods.StepInputs``). Checkpoints, progress bars, mixed
precision and multi-GPU (``accelerate launch``) come from ``transformers``. The run lifecycle
(checkpoint directories, resume, curves) is ``distillery.training.runs``.
"""
from __future__ import annotations

import contextlib
import functools
import gc
from pathlib import Path
from typing import Callable

import accelerate.optimizer
import numpy as np
import torch
import transformers.trainer
from torch import nn
from tqdm.auto import tqdm
from transformers import EarlyStoppingCallback, ProgressCallback, Trainer, TrainingArguments
from transformers.modeling_outputs import CausalLMOutput, SequenceClassifierOutput

from ..forking import slot
from ..data.augment import Jittered
from ..data.device import to_device
from ..data.prepared import UNLABELLED
from ..methods.base import HARD, Hyperparams, Method, StepInputs
from ..models.causal_lm import continue_prompts, prompt_lengths_from_labels
from ..models.zoo import SteadyTrainMode
from ..token_logits import dense_targets

# Each step, accelerate asks importlib whether the package lomo_optim is installed (twice: 0.2 ms on two CPU cores,
# half a small student's step) and transformers parses SageMaker's variables; neither answer changes during a run
accelerate.optimizer.is_lomo_available = functools.cache(accelerate.optimizer.is_lomo_available)
transformers.trainer.is_sagemaker_mp_enabled = functools.cache(transformers.trainer.is_sagemaker_mp_enabled)


class RunProgress(ProgressCallback):
    """The Trainer's progress bar and log lines, named after the run (``seed 3``) and on the terminal line of the
    process training it (``forking.slot``), so seeds trained side by side each keep their own bar."""

    def __init__(self, label: str):
        super().__init__()
        self.label, self.position = label, slot()

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc=self.label, position=self.position,
                                     dynamic_ncols=True)
        self.current_step = 0

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        """No evaluation bar: it would take the line of another process's training bar."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs={"run": self.label, **(logs or {})}, **kwargs)


class TensorDictDataset(torch.utils.data.Dataset):
    """Equal-length tensors served as dict batches; ``__getitems__`` fetches a whole batch at once, as an index
    slice on the device the tensors live on (``to``: the training device, once per run)."""

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

    @property
    def device(self) -> torch.device:
        return next(iter(self.columns.values())).device

    def to(self, device: torch.device | str) -> "TensorDictDataset":
        """Every column moved to ``device`` (in place; a no-op where they are): no copy per batch afterwards."""
        self.columns = {k: v.to(device) for k, v in self.columns.items()}
        return self

    def __getitem__(self, index):
        return {k: v[index] for k, v in self.columns.items()}

    def __getitems__(self, indices: list[int]):
        index = to_device(torch.as_tensor(indices), self.device)
        return {k: v[index] for k, v in self.columns.items()}


RESIDENT_DATA = (TensorDictDataset, Jittered)  # array datasets: moved to the training device once, batched there


def collate(batch):
    """Batches from ``TensorDictDataset.__getitems__`` are ready; lists of rows are stacked."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.stack([row[k] for row in batch]) for k in batch[0]}


def accuracy_metric(eval_pred) -> dict:
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


GREATER_IS_BETTER = {"accuracy": True, "nll": False}  # the metrics a checkpoint can be selected by


class Distillee(SteadyTrainMode, nn.Module):
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


def tokens_as_rows(outputs, teacher_logits: torch.Tensor | dict | None, labels: torch.Tensor):
    """A causal LM's (B, L, V) logits as the (N, V) rows of its N target tokens (label not ``UNLABELLED``: padding
    and each sequence's last position have no next token), with the teacher's logits and the labels alike, so
    every logit method's loss is a mean over tokens; a classifier's outputs as they are. Stored top-k teacher
    targets (``token_logits.TokenLogits.top_k_parts``) are made dense here, on the device, for the N rows only.
    Returns ``(outputs, teacher_logits, labels, token_index)``: ``token_index`` the (sequence, position) of each
    row, in the batch's order (None for a classifier)."""
    if outputs.logits.dim() != 3:
        return outputs, teacher_logits, labels, None
    keep = (labels != UNLABELLED).nonzero(as_tuple=True)  # found once: each boolean index would sync a GPU again
    rows = CausalLMOutput(logits=outputs.logits[keep])
    if isinstance(teacher_logits, dict):
        teacher_logits = dense_targets({name: part[keep] for name, part in teacher_logits.items()},
                                       outputs.logits.shape[-1])
    else:
        teacher_logits = None if teacher_logits is None else teacher_logits[keep]
    return rows, teacher_logits, labels[keep], keep


def on_student_samples(seed: int, step: int, fraction: float, start_step: int = 0) -> bool:
    """Whether training step ``step`` learns from the student's own samples (needs ``student_samples``): from
    ``start_step`` on, drawn with probability ``fraction`` from the seed and the step alone, so a resumed run and every
    process draw alike."""
    return step >= start_step and bool(np.random.default_rng([seed, step]).random() < fraction)


class DistillationTrainer(Trainer):
    """A ``Trainer`` whose loss is ``method.loss(StepInputs, hyperparams)``.

    The loss's named terms (for KD: ``ce`` and ``kd``) are averaged between two logging steps
    and logged beside ``loss``. A step does no work the run does not use: no host sync (a batch's indices, jitter
    and collated text reach a GPU asynchronously, ``data.device``; the loss's NaN check, the terms and the gradient
    norm are read at logging steps only; a language model's step waits once, to find its target tokens), no count of
    label tokens (the losses are per-batch means), no division of the loss by one, no copy of a batch already on
    the device, and the parameter count for the FLOPs estimate taken once.
    """

    @property
    def loss_is_scaled_for_ga(self) -> bool:
        """The losses are per-batch means: the ``Trainer`` divides them by the step's number of batches, which
        with one batch a step would be a division by one (two operations a step, forward and backward)."""
        return self.current_gradient_accumulation_steps == 1

    def __init__(self, *args, method: Method = HARD, hyperparams: dict | None = None, teacher=None, **kwargs):
        tf32 = torch.backends.cuda.matmul.allow_tf32
        super().__init__(*args, **kwargs)
        # accelerate turns on TF32 matmuls for a compiled model in fp32 on CUDA: `precision` says what they run in
        torch.backends.cuda.matmul.allow_tf32 = tf32
        self.method = method
        self.hyperparams = Hyperparams(method, hyperparams or {})  # a param read but not declared: named
        self.teacher = None if teacher is None else teacher.to(self.args.device)  # once, not per step
        if self.teacher is not None and self.args.torch_compile:  # as the Trainer compiles the student
            self.teacher = torch.compile(self.teacher, backend=self.args.torch_compile_backend,
                                         mode=self.args.torch_compile_mode)
        self.output_flags = {f"output_{need}": True for need in ("hidden_states", "attentions") if need in method.needs}
        self._term_steps: dict[str, list[torch.Tensor]] = {}  # each term's values at the training steps since the
                                                              # last log (a step may leave a term out)
        self.model_accepts_loss_kwargs = False  # no num_items_in_batch: counting labels costs a step time (and a
                                                # gather across processes) for a number compute_loss does not use
        self._parameters_without_embeddings: int | None = None
        self._device = self.args.device  # a property that checks torch is installed at every call

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        stored_logits = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels")
        sampled = model.training and self._samples_this_step()
        if sampled:
            inputs = self._student_samples(inputs, labels)
            labels = inputs.pop("labels")
        outputs = model(**inputs, **self.output_flags)
        teacher_out = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_out = self.teacher(**inputs, **self.output_flags)
        targets = stored_logits if teacher_out is None else teacher_out.logits
        student, targets, loss_labels, token_index = tokens_as_rows(outputs, targets, labels)
        step_inputs = StepInputs(
            student=student,
            labels=loss_labels,
            teacher_logits=targets,
            teacher=teacher_out,
            helpers=getattr(self.model, "helpers", None),  # self.model: the unwrapped model (unwrap_model per step
                                                           # costs ~1 ms in accelerate's package checks)
            peers=outputs.get("peer_outputs"),
            step=self.state.global_step,
            max_steps=self.state.max_steps or 1,
            inputs=inputs,
            sampled=sampled,
            token_index=token_index,
        )
        result = self.method.loss(step_inputs, self.hyperparams)
        if model.training:  # kept on the device (no sync per step), summed at logging time
            for name, value in result.terms.items():
                self._term_steps.setdefault(name, []).append(value.detach())
        return (result.loss, SequenceClassifierOutput(logits=outputs.logits)) if return_outputs else result.loss

    def _samples_this_step(self) -> bool:
        return "student_samples" in self.method.needs and on_student_samples(
            self.args.seed, self.state.global_step, self.hyperparams["student_data_fraction"],
            self.hyperparams["start_step"])

    def _student_samples(self, inputs: dict, labels: torch.Tensor) -> dict:
        """The batch's prompts (its first ``prompt_tokens``, or with ``prompt_tokens`` None each row's own prompt,
        found from ``labels``) continued by the student (``models.causal_lm.continue_prompts``; mixed with the live
        teacher where the method has ``teacher_mix``), labelled by the sampled tokens."""
        hp, tokenizer = self.hyperparams, self.processing_class
        student = self.model.student if isinstance(self.model, Distillee) else self.model
        prompts = hp["prompt_tokens"] or prompt_lengths_from_labels(labels)
        return continue_prompts(student, inputs["input_ids"], inputs["attention_mask"], prompts,
                                hp["max_new_tokens"], hp.get("temperature", 1.0), tokenizer.eos_token_id,
                                tokenizer.pad_token_id, self.teacher, hp.get("teacher_mix", 0.0), hp.get("max_length"))

    def _prepare_inputs(self, inputs: dict) -> dict:
        """A batch already on the training device (resident arrays are batched there by index slices) as it is:
        the ``Trainer`` would call ``.to(device)`` on each tensor, which changes nothing then, through two levels of
        Python a tensor (1 % of a small student's step on a CPU)."""
        on_device = (isinstance(value, torch.Tensor) and value.device == self._device for value in inputs.values())
        if inputs and all(on_device):
            return inputs
        return super()._prepare_inputs(inputs)

    def create_optimizer(self, model=None):
        """Without weight decay, one parameter group: the Trainer's two (weights with decay; biases and norms
        without) would be the same update in two optimizer calls, one of them for nothing."""
        model = self.model if model is None else model
        if self.optimizer is None and self.args.weight_decay == 0 and self.optimizer_cls_and_kwargs is None:
            optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls([p for p in model.parameters() if p.requires_grad], **kwargs,
                                           weight_decay=0.0)
        return super().create_optimizer(model)

    def _get_grad_norm(self, model, grad_norm=None):
        """The gradient norm is only logged: without clipping it is computed on logging steps alone."""
        if grad_norm is None and (self.state.global_step + 1) % self.state.logging_steps:
            return None
        return super()._get_grad_norm(model, grad_norm)

    def floating_point_ops(self, inputs: dict) -> int:
        """The ``Trainer``'s estimate (6 x input elements x parameters without embeddings), counting the
        parameters once instead of at every step."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._parameters_without_embeddings is None:
            self._parameters_without_embeddings = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._parameters_without_embeddings

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self._term_steps:
            values = torch.stack([value for steps in self._term_steps.values() for value in steps]).double()
            totals = torch.stack([functools.reduce(torch.add, steps)  # in float64, step by step
                                  for steps in values.split([len(steps) for steps in self._term_steps.values()])])
            if self.accelerator.num_processes > 1:  # every process calls log at the same step
                totals = self.accelerator.reduce(totals, reduction="mean")
            for (name, steps), total in zip(self._term_steps.items(), totals.tolist()):
                logs[name] = round(total / len(steps), 6)  # the mean over the steps that have the term
            self._term_steps.clear()
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


@contextlib.contextmanager
def gradients_cleared_from_a_list(model: nn.Module):
    """For the run, ``model.zero_grad()`` clears the gradients of the parameters ``model`` has now, from a list made
    once. The ``Trainer`` calls it after every step, and ``nn.Module.zero_grad`` walks the module tree for the
    parameters each time (0.02 ms, 3 % of a small student's step on a CPU: ``bench/trainer_overhead.py``). The
    parameters are fixed for the run (the optimizer holds them), so the same gradients are cleared."""
    parameters = list(model.parameters())

    def zero_grad(set_to_none: bool = True) -> None:
        if not set_to_none:
            return type(model).zero_grad(model, set_to_none=False)
        for parameter in parameters:
            parameter.grad = None

    model.zero_grad = zero_grad  # an instance attribute: nn.Module keeps functions out of its registries
    try:
        yield
    finally:
        del model.zero_grad


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
    metric: str = "accuracy",
    compute_metrics: Callable = accuracy_metric,
    preprocess_logits_for_metrics: Callable | None = None,
    eval_batch_size: int | None = None,
    progress: str | None = None,
):
    """Train ``model`` in place with the ``Trainer`` and return it.

    Checkpoints go to ``checkpoint_dir``; ``resume_from`` continues a crashed run from one of them
    (same weights, optimizer, RNG state and data position). With ``early_stopping_patience`` training stops
    once validation accuracy has not improved for that many evaluations (teacher); without it the full
    ``max_steps`` budget runs (students). The model returned is the one at the best validation accuracy (ties:
    the earlier step) with early stopping or ``select="best"`` (a checkpoint is then saved at every evaluation),
    else the one at the last step. Language models are selected by ``metric="nll"`` (lowest validation NLL per
    token), from the per-row sums ``preprocess_logits_for_metrics`` keeps of each evaluation batch. ``progress``
    names the run on its progress bar and log lines (``RunProgress``).
    """
    from ..distributed import processes

    early = early_stopping_patience is not None
    best = early or select == "best"
    save_steps = train_params["eval_steps"] if best else train_params["save_steps"]
    n = processes()
    # several processes: batch_size rows per step in all, split between them (accelerate's split_batches), so
    # each step sees the same rows as with one process
    accelerator = {"split_batches": True} if n > 1 else {}
    # on a GPU, batches collated on the CPU (text) are copied from page-locked memory without a host sync per step,
    # as data.device copies the arrays' row indices; arrays are resident on the device and batched there
    pinned = torch.cuda.is_available() and not isinstance(train_data, RESIDENT_DATA)
    if pinned:
        accelerator["non_blocking"] = True
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=train_params["max_steps"],
        per_device_train_batch_size=train_params["batch_size"],
        per_device_eval_batch_size=-(-(eval_batch_size or max(256, train_params["batch_size"])) // n) * n,  # n | it
        learning_rate=train_params["learning_rate"],
        weight_decay=train_params["weight_decay"],
        max_grad_norm=train_params["max_grad_norm"],
        lr_scheduler_type=train_params["lr_scheduler"],
        warmup_steps=train_params["warmup_steps"],
        optim="adamw_torch_fused",  # the update in one kernel, on a CPU as on a GPU: a third fewer operations a step
                                    # than AdamW's loop over tensors (bench/trainer_overhead.py, BENCHMARKS.md)
        eval_strategy="steps",
        eval_steps=train_params["eval_steps"],
        logging_strategy="steps",
        logging_steps=train_params["logging_steps"],
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2 if best else 1,
        load_best_model_at_end=best,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (its check would sync with the GPU each step)
        metric_for_best_model=metric if best else None,
        greater_is_better=GREATER_IS_BETTER[metric] if best else None,
        seed=seed,
        data_seed=seed,
        full_determinism=train_params["full_determinism"],
        torch_compile=train_params["compile"],
        tf32=False,  # as for accelerate above: a compiled model's fp32 matmuls stay fp32
        report_to="none",
        remove_unused_columns=False,
        label_names=["labels"],  # a Distillee's forward(**inputs) hides them: evaluation scores it too
        dataloader_pin_memory=pinned,
        **_precision_flags(train_params["precision"]),
        **({"accelerator_config": accelerator} if accelerator else {}),
    )
    for data in (train_data, eval_data):  # arrays: resident on the training device for the whole run
        if isinstance(data, RESIDENT_DATA):
            data.to(args.device)
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
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        callbacks=callbacks,
        method=method,
        hyperparams=hyperparams,
        teacher=teacher,
    )
    if progress is not None:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(RunProgress(progress))
    # the Trainer starts and ends with a full garbage collection (accelerate's free_memory), which scans every
    # object of the imported libraries (0.25 s on two CPU cores); frozen during the run, they are left out
    gc.freeze()
    try:
        with gradients_cleared_from_a_list(trainer.model):
            trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    finally:
        gc.unfreeze()  # what became garbage meanwhile is collected as usual afterwards
    return trainer.model
