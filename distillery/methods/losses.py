"""Loss primitives shared by the distillation methods: pure functions of tensors.

Each method's own loss lives in its module under ``distillery/methods/``; what several of them
use (the loss-terms record, cross-entropy on the labels, the temperature-softened KL) is here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..data.prepared import UNLABELLED

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


class LossTerms(NamedTuple):
    """The loss to optimise and its parts, each a scalar tensor (every part is logged per step)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) averaged over the batch (``batchmean``), without T²."""
    import torch.nn.functional as F

    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def labelled_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the labelled rows of the batch only (mean over them); rows labelled ``UNLABELLED``
    (transfer rows, learnt from the teacher's soft targets only) are masked out (``F.cross_entropy``'s own
    ``ignore_index``). A batch without a labelled row gives 0 with a gradient of 0, where the mean would be
    0/0. The sum over the count equals ``F.cross_entropy``'s mean bit for bit, and needs no host sync per
    step on a GPU."""
    import torch.nn.functional as F

    count = (labels != UNLABELLED).sum().clamp(min=1)
    return F.cross_entropy(student_logits, labels, ignore_index=UNLABELLED, reduction="sum") / count


def hard_terms(student_logits: torch.Tensor, teacher_logits, labels: torch.Tensor) -> LossTerms:
    """Cross-entropy on the hard labels only: the baseline; ignores any teacher."""
    ce = labelled_ce(student_logits, labels)
    return LossTerms(ce, {"ce": ce})
