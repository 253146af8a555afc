"""Loss primitives shared by the distillation methods: pure functions of tensors.

Each method's own loss lives in its module under ``distillery/methods/``; what several of them
use (the loss-terms record, cross-entropy on the labels, the temperature-softened KL, forward and reverse, and the
generalized Jensen–Shannon divergence of ``gkd`` and ``on_policy_gkd``) is here.
"""
from __future__ import annotations

import math
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


def reverse_soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(s/T) ‖ softmax(t/T)) averaged over the batch (``batchmean``), without T²: the student's
    distribution first, so the student is pushed off the classes the teacher gives little mass
    (mode-seeking), where ``soft_kl``'s forward KL makes it cover every class the teacher covers."""
    import torch.nn.functional as F

    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)
    # F.kl_div(input, target) is KL(target ‖ input): the student is the target here
    return F.kl_div(log_p_teacher, log_p_student, reduction="batchmean", log_target=True)


def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float,
                    beta: float) -> torch.Tensor:
    """Agarwal et al. (2024), eq. (1), batchmean over rows, without T²: with P_t = softmax(t/T),
    P_s = softmax(s/T) and the mixture M = β·P_t + (1−β)·P_s,

        JSD_β = β·KL(P_t ‖ M) + (1−β)·KL(P_s ‖ M),

    log M computed in log space (logsumexp of log P_t + log β and log P_s + log(1−β)). The endpoints as TRL's
    ``GKDTrainer.generalized_jsd_loss`` takes them: β = 0 is the forward KL(P_t ‖ P_s) (``kd``'s), β = 1 the
    reverse KL(P_s ‖ P_t) (``reverse_kl``'s). JSD_β itself tends to 0 at both ends: the endpoints are the limits
    of JSD_β/β as β → 0 and of JSD_β/(1−β) as β → 1, not JSD_β's values. Between them,
    0 ≤ JSD_β ≤ −β·log β − (1−β)·log(1−β), and JSD_0.5 is symmetric in the student and the teacher.
    """
    import torch
    import torch.nn.functional as F

    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)

    def kl(log_p, log_q):  # KL(p ‖ q), batchmean (F.kl_div takes q first)
        return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)

    if beta == 0:
        return kl(log_p_teacher, log_p_student)
    if beta == 1:
        return kl(log_p_student, log_p_teacher)
    log_m = torch.logsumexp(torch.stack([log_p_teacher + math.log(beta), log_p_student + math.log1p(-beta)]), dim=0)
    return beta * kl(log_p_teacher, log_m) + (1.0 - beta) * kl(log_p_student, log_m)


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
