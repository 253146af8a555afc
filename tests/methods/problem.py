"""A tiny fixed problem that any method's loss runs on, its inputs built as ``DistillationTrainer.compute_loss``
builds them: a student of the first kind the method's own ``check`` accepts (an MLP, a CNN or a BERT), its peers and
helpers where the method needs them, a fixed random teacher run once (its logits, sharpened, are the stored ones),
and random labels, independent of the teacher."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from distillery.methods import Method, StepInputs, kd_schema
from distillery.methods.base import SHARED, Hyperparams
from distillery.models.zoo import build_model
from distillery.schema import validate_block
from distillery.training.trainer import on_student_samples

ROWS, CLASSES = 32, 4
LABEL_NAMES = [f"class {c}" for c in range(CLASSES)]
KINDS = ("mlp", "cnn", "hf")  # in the order a method is offered them


def hyperparams(method: Method, **values) -> Hyperparams:
    """What ``method``'s loss is handed at params.yaml's defaults, ``values`` (shared or its own) set."""
    schema = kd_schema()
    fields = {**{name: schema[name] for name in SHARED}, method.name: dict(method.params)}
    raw = {**{k: v for k, v in values.items() if k not in method.params},
           method.name: {k: v for k, v in values.items() if k in method.params}}
    return Hyperparams(method, method.hyperparams(validate_block(raw, fields, "kd", "test")))


def _bert(width: int) -> nn.Module:
    config = BertConfig(vocab_size=16, hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * width, max_position_embeddings=8, num_labels=CLASSES,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager")
    return BertForSequenceClassification(config)


def _model(kind: str, teacher: bool, seed: int) -> nn.Module:
    """A freshly initialised student or teacher of ``kind``: an MLP on 8 features, a CNN on 8x8 images (the teacher's
    widths: a narrower CNN learnt too slowly beside at's attention term), a BERT on 6 tokens."""
    torch.manual_seed(seed)
    if kind == "hf":
        return _bert(32 if teacher else 16)
    if kind == "mlp":
        return build_model({"arch": "mlp", "hidden_sizes": [32 if teacher else 16], "dropout": 0.0}, [8], LABEL_NAMES)
    return build_model({"arch": "cnn", "channels": [4, 8], "hidden_size": 16, "dropout": 0.0}, [8, 8], LABEL_NAMES)


def _output_flags(method: Method) -> dict:
    """The outputs beside the logits the method's loss reads (the Trainer's ``output_flags``)."""
    return {f"output_{need}": True for need in ("hidden_states", "attentions") if need in method.needs}


def _model_inputs(kind: str) -> dict:
    g = torch.Generator().manual_seed(1)
    if kind == "mlp":
        return {"features": torch.randn(ROWS, 8, generator=g)}
    if kind == "cnn":
        return {"features": torch.randn(ROWS, 8, 8, generator=g)}
    mask = torch.ones(ROWS, 6, dtype=torch.long)
    mask[::2, 4:] = 0  # every other row padded after 4 tokens
    return {"input_ids": torch.randint(1, 16, (ROWS, 6), generator=g) * mask, "attention_mask": mask}


def _sharpened(logits: torch.Tensor) -> torch.Tensor:
    """A random model's logits, each class standardised over the rows and scaled to a standard deviation of 4: the
    teacher then picks every class on some rows, and its soft targets at T = 4 are far from uniform."""
    return 4 * (logits - logits.mean(0)) / logits.std(0)


@dataclass
class Problem:
    """A method's problem: its params, the models it trains, the teacher's fixed outputs, the batch and its labels."""

    method: Method
    hp: Hyperparams
    student: nn.Module
    peers: list
    helpers: nn.Module | None
    teacher_output: Any
    teacher_logits: torch.Tensor
    model_inputs: dict
    labels: torch.Tensor

    def parameters(self) -> list[nn.Parameter]:
        """What the Trainer optimises: the student, its peers and helpers."""
        modules = [self.student, *self.peers] + ([self.helpers] if self.helpers is not None else [])
        return [p for module in modules for p in module.parameters()]

    def step_inputs(self, labels: torch.Tensor | None = None, sampled: bool = False) -> StepInputs:
        """The student (and peers) run on the batch; ``labels`` (default: the problem's) as the loss sees them.
        For a method that samples, each row is a one-token sequence (``inputs.input_ids`` and ``token_index``)."""
        flags = _output_flags(self.method)
        inputs = dict(self.model_inputs)
        token_index = None
        if "student_samples" in self.method.needs:
            inputs["input_ids"] = torch.zeros(ROWS, 1, dtype=torch.long)
            token_index = (torch.arange(ROWS), torch.zeros(ROWS, dtype=torch.long))
        return StepInputs(
            student=self.student(**self.model_inputs, **flags),
            labels=self.labels if labels is None else labels,
            teacher_logits=self.teacher_logits,
            teacher=self.teacher_output,
            helpers=self.helpers,
            peers=[peer(**self.model_inputs, **flags) for peer in self.peers] or None,
            inputs=inputs,
            sampled=sampled,
            token_index=token_index,
        )

    def training_inputs(self, step: int, generator: torch.Generator) -> StepInputs:
        """Step ``step``'s inputs: on the steps the Trainer would sample (needs ``student_samples``), the rows
        labelled by tokens drawn from the student's distribution (mixed with the teacher's by ``teacher_mix``),
        else the problem's labels."""
        if "student_samples" not in self.method.needs or not on_student_samples(
                0, step, self.hp["student_data_fraction"], self.hp["start_step"]):
            return self.step_inputs()
        with torch.no_grad():
            logits = self.student(**self.model_inputs).logits / self.hp.get("temperature", 1.0)
            mix = self.hp.get("teacher_mix", 0.0)
            p = (1 - mix) * logits.softmax(-1) + mix * self.teacher_logits.softmax(-1)
        return self.step_inputs(torch.multinomial(p, 1, generator=generator)[:, 0], sampled=True)


def make_problem(method: Method, hp: Hyperparams | None = None) -> Problem:
    """The problem for ``method`` (``hp``: its params, default ``hyperparams(method)``), on the first kind of model
    its ``check`` accepts; the same student weights and data every call."""
    hp = hyperparams(method) if hp is None else hp
    for kind in KINDS:
        student, teacher = _model(kind, False, seed=0), _model(kind, True, seed=100).eval().requires_grad_(False)
        if method.check is None or method.check(student, teacher, hp) is None:
            break
    else:
        raise AssertionError(f"{method.name}: its check refuses every kind of model ({', '.join(KINDS)})")
    inputs = _model_inputs(kind)
    with torch.no_grad():
        teacher_output = teacher(**inputs, **_output_flags(method))
        targets = _sharpened(teacher_output.logits)
        if "teachers" in method.needs:  # the teacher and a second one, combined as the method declares
            second = _sharpened(_model(kind, True, seed=101).eval()(**inputs).logits)
            targets = torch.from_numpy(method.combine(np.stack([targets.numpy(), second.numpy()], axis=1),
                                                      np.array([0.9, 0.8]), hp))
    peers = [_model(kind, False, seed=1 + k) for k in range(hp.get("peers", 1))] if "peers" in method.needs else []
    helpers = method.make_helpers(student, teacher, hp) if method.make_helpers else None
    labels = torch.randint(0, CLASSES, (ROWS,), generator=torch.Generator().manual_seed(2))
    return Problem(method, hp, student, peers, helpers, teacher_output, targets, inputs, labels)
