"""Distillation losses: pure functions of logits and labels.

Every method takes ``(student_logits, teacher_logits, labels, **hyper)`` and returns a
``LossTerms``: the scalar to back-propagate and its named parts for logging. A new method
(decoupled KD, relational KD, ...) is one more function registered in ``METHODS``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    """The loss to optimise and its parts, each a scalar tensor."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) averaged over the batch (``batchmean``), without T²."""
    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def kd_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> LossTerms:
    """Hinton et al. (2015): ``(1-α)·CE(y, s) + α·T²·KL(softmax(t/T) ‖ softmax(s/T))``.

    The T² factor keeps the gradient of the soft term on the same scale whatever T is.
    ``terms`` holds the unweighted ``ce`` and the T²-scaled ``kd`` term.
    """
    ce = F.cross_entropy(student_logits, labels)
    kd = soft_kl(student_logits, teacher_logits, T) * (T * T)
    return LossTerms((1.0 - alpha) * ce + alpha * kd, {"ce": ce, "kd": kd})


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> torch.Tensor:
    """The scalar Hinton distillation loss (see ``kd_terms``)."""
    return kd_terms(student_logits, teacher_logits, labels, T, alpha).loss


def hard_terms(student_logits: torch.Tensor, teacher_logits, labels: torch.Tensor) -> LossTerms:
    """Cross-entropy on the hard labels only: the baseline; ignores any teacher."""
    ce = F.cross_entropy(student_logits, labels)
    return LossTerms(ce, {"ce": ce})


# kd.method -> loss function; the names are the values params.yaml accepts.
METHODS: dict[str, Callable[..., LossTerms]] = {
    "kd": kd_terms,
}
