"""``dist``: Huang, You, Wang, Qian & Xu (NeurIPS 2022), "Knowledge Distillation from A Stronger Teacher"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce
from ..schema import FLOAT, Field, non_negative
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch

EPS = 1e-8  # guards 0/0: a constant vector (zero variance) counts as uncorrelated (the official code adds ε)


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(EPS)


def relations(p_student: torch.Tensor, p_teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inter, intra)``: inter-class relation ``1 − mean_i ρ(p_s[i, :], p_t[i, :])`` (each example's
    predictions over the classes) and intra-class relation ``1 − mean_k ρ(p_s[:, k], p_t[:, k])`` (each
    class's predictions across the batch), ρ the Pearson correlation. With two classes a row's ρ is ±1:
    the inter-class relation then only sees whether student and teacher favour the same class."""
    inter = 1 - pearson_rows(p_student, p_teacher).mean()
    intra = 1 - pearson_rows(p_student.T, p_teacher.T).mean()
    return inter, intra


def dist_terms(student_logits, teacher_logits, labels, T: float, beta: float, gamma: float) -> LossTerms:
    """Huang et al. (2022): ``CE(y, s) + β·T²·inter + γ·T²·intra`` on ``softmax(s/T)`` and ``softmax(t/T)``
    (see ``relations``; the paper's τ is 1 on ImageNet). As in the official code, CE keeps weight 1 and
    ``kd.alpha`` is not read. ``terms`` holds the unweighted ``ce`` and the T²-scaled ``inter`` and ``intra``."""
    import torch.nn.functional as F

    ce = labelled_ce(student_logits, labels)
    p_student = F.softmax(student_logits / T, dim=-1)
    p_teacher = F.softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)
    inter, intra = (r * (T * T) for r in relations(p_student, p_teacher))
    return LossTerms(ce + beta * inter + gamma * intra, {"ce": ce, "inter": inter, "intra": intra})


def _check_params(params):
    size = params["train"]["batch_size"]
    if size < 2:
        return f"train.batch_size = {size}: the intra-class relation correlates each class across a batch, so needs >= 2"
    return None


METHOD = Method(
    name="dist",
    paper="Huang, You, Wang, Qian & Xu 2022, Knowledge Distillation from A Stronger Teacher (NeurIPS)",
    loss=lambda inputs, hp: dist_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, hp["T"],
                                       hp["beta"], hp["gamma"]),
    params={
        "beta": Field(FLOAT, non_negative, 1.0, help="β, the weight of the inter-class relation"),
        "gamma": Field(FLOAT, non_negative, 1.0, help="γ, the weight of the intra-class relation"),
    },
    shared=("T",),
    terms=("ce", "inter", "intra"),
    check_params=_check_params,
    description="matches the Pearson correlations of student and teacher predictions, per example and per class",
)
