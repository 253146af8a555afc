"""Loss primitives shared by the distillation methods: pure functions of tensors.

Each method's own loss lives in its module under ``distillery/methods/``; what several of them
use (the loss-terms record, cross-entropy on the labels, the temperature-softened KL) is here.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    """The loss to optimise and its parts, each a scalar tensor (every part is logged per step)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) averaged over the batch (``batchmean``), without T²."""
    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def hard_terms(student_logits: torch.Tensor, teacher_logits, labels: torch.Tensor) -> LossTerms:
    """Cross-entropy on the hard labels only: the baseline; ignores any teacher."""
    ce = F.cross_entropy(student_logits, labels)
    return LossTerms(ce, {"ce": ce})
