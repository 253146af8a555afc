"""``gkd``: the generalized Jensen–Shannon divergence of Agarwal, Vieillard, Zhou, Stanczyk, Ramos, Geist &
Bachem (ICLR 2024), "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes"."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce
from ..schema import FLOAT, Field, unit_interval
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


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


def gkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, T: float,
              alpha: float, beta: float) -> LossTerms:
    """Agarwal et al. (2024): ``(1-α)·CE(y, s) + α·T²·JSD_β(softmax(t/T) ‖ softmax(s/T))`` (see
    ``generalized_jsd``), batchmean over rows (per token for a language model, logits flattened to (N, V)); the
    T² factor as in ``kd``. Rows labelled ``UNLABELLED`` are left out of CE and kept in the JSD. ``terms`` holds
    the unweighted ``ce`` and the T²-scaled ``jsd``."""
    ce = labelled_ce(student_logits, labels)
    jsd = generalized_jsd(student_logits, teacher_logits, T, beta) * (T * T)
    return LossTerms((1.0 - alpha) * ce + alpha * jsd, {"ce": ce, "jsd": jsd})


METHOD = Method(
    name="gkd",
    paper="Agarwal et al. 2024, On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes "
          "(ICLR)",
    loss=lambda inputs, hp: gkd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                      hp["T"], hp["alpha"], hp["beta"]),
    params={
        "beta": Field(FLOAT, unit_interval, 0.5,
                      help="β of the generalized JSD: the teacher's weight in the mixture; 0: forward KL (kd's), "
                           "1: reverse KL (reverse_kl's)"),
    },
    terms=("ce", "jsd"),
    description="generalized Jensen–Shannon divergence between teacher and student at temperature T "
                "(stored teacher logits)",
)
