"""``sp``: Tung & Mori (ICCV 2019), "Similarity-Preserving Knowledge Distillation"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms
from ..schema import FLOAT, LIST, Field, non_negative
from . import _features
from .base import Method
from .kd import kd_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def similarity(features: torch.Tensor) -> torch.Tensor:
    """``G̃``: the b×b similarities ``G = A·Aᵀ`` of the activations flattened per example (A: b × rest), each row
    L2-normalised."""
    import torch.nn.functional as F

    flat = features.flatten(1)
    return F.normalize(flat @ flat.T, dim=1)


def sp_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """One layer pair's term: ``‖G̃_t − G̃_s‖_F² / b²``. The widths may differ (G is b×b); invariant to scaling
    either activation."""
    b = len(student_features)
    g_s, g_t = similarity(student_features), similarity(teacher_features.to(student_features.dtype))
    return (g_t - g_s).pow(2).sum() / (b * b)


def sp_terms(student_logits, teacher_logits, labels, sp: torch.Tensor, T: float, alpha: float,
             gamma: float) -> LossTerms:
    """``(1-α)·CE + α·T²·KL + γ·Σ_pairs sp_loss`` (``sp``: the sum over layer pairs). α = 0 is the paper's
    CE + γ·L_SP; α > 0 its combination with KD."""
    kd = kd_terms(student_logits, teacher_logits, labels, T, alpha)
    return LossTerms(kd.loss + gamma * sp, {**kd.terms, "sp": sp})


def _pairs(layers, n_student: int, n_teacher: int | None) -> list[tuple[int, int]]:
    return _features.pair_indices(_features.layer_pairs(layers), n_student, n_teacher, "kd.sp.layers")


def _loss(inputs, hp):
    import torch

    student, teacher = inputs.student.hidden_states, inputs.teacher.hidden_states
    pairs = _pairs(hp["layers"], len(student) - 1, len(teacher) - 1)
    sp = torch.stack([_features.in_float32(sp_loss, student[s], teacher[t]) for s, t in pairs]).sum()
    return sp_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, sp, hp["T"], hp["alpha"],
                    hp["gamma"])


def _check_params(params):
    models = _features.described_models(params)
    for role, spec in models:
        if spec["arch"] == "hf":
            return f"needs MLP or CNN teacher and student ({role}.model.arch = 'hf')"
    blocks = {role: _features.spec_blocks(spec) for role, spec in models}
    try:
        _pairs(params["kd"]["sp"]["layers"], blocks["student"], blocks.get("teacher"))
    except ValueError as exc:
        return str(exc)
    return None


def _check(student, teacher, hp):
    for role, model in (("student", student), ("teacher", teacher)):
        if _features.arch(model) == "hf":
            return f"needs MLP or CNN teacher and student (the {role} is a Hugging Face text model)"
    try:
        _pairs(hp["layers"], _features.num_blocks(student), _features.num_blocks(teacher))
    except ValueError as exc:
        return str(exc)
    return None


METHOD = Method(
    name="sp",
    paper="Tung & Mori 2019, Similarity-Preserving Knowledge Distillation (ICCV)",
    loss=_loss,
    needs=frozenset({"live_teacher", "hidden_states"}),
    params={
        "layers": Field(LIST, _features.check_layer_pairs, [-1],
                        help="hidden blocks to pair: a number for both models or [student, teacher] (1..n, -1: the "
                             "last, the penultimate embedding)"),
        "gamma": Field(FLOAT, non_negative, 3000.0, help="γ, the weight of the similarity term (paper, CIFAR-10)"),
    },
    terms=("ce", "kd", "sp"),
    check_params=_check_params,
    check=_check,
    description="the student's batch similarity matrices match the teacher's, plus KD on live teacher logits",
)
