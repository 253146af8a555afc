"""Loss primitives shared by the distillation methods: pure functions of tensors.

Each method's own loss lives in its module under ``distillery/methods/``; what several of them
use (the loss-terms record, cross-entropy on the labels, the temperature-softened KL, forward and reverse, and the
generalized Jensen–Shannon divergence of ``gkd`` and ``on_policy_gkd``) is here.

Their inputs are rows: logits of shape (N, classes), the teacher's of the student's shape, labels (N,) of class
indices (``UNLABELLED``, -100, for a row without one); a language model's (batch, length, vocab) logits are
flattened to (batch·length, vocab) first, as the pipeline's Trainer does. Anything else is refused with a
``ValueError`` rather than broadcast. Half-precision logits are taken in float32 and the teacher is a constant
(detached). Logits are finite: a class masked with -inf makes a KL NaN (``kl_rows``); a large negative logit masks it.
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


def log_probabilities(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      T: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log softmax(s/T) and log softmax(t/T) of checked rows (``check_rows``): half precision taken in float32,
    the teacher detached and in the student's dtype."""
    import torch.nn.functional as F

    check_rows(student_logits, teacher_logits)
    student_logits = _at_least_float32(student_logits)
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    return F.log_softmax(student_logits / T, dim=-1), F.log_softmax(teacher_logits / T, dim=-1)


def kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_c p_c·(log p_c − log q_c), averaged over the rows (``batchmean``), from log-probabilities.
    Finite logits only: a class masked with a logit of -inf gives 0·(−inf + inf) = NaN (``F.kl_div``); mask with a
    large negative logit (e.g. −1e4), whose probability is 0 all the same. Masking -inf here would cost five
    operations a step for every run (``bench/trainer_overhead.py``: 0.07–0.10 ms of a 0.9 ms digits step)."""
    import torch.nn.functional as F

    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)  # F.kl_div(input, target): KL(target ‖ input)


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) averaged over the batch (``batchmean``), without T²."""
    log_p_student, log_p_teacher = log_probabilities(student_logits, teacher_logits, T)
    return kl_rows(log_p_teacher, log_p_student)


def reverse_soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(s/T) ‖ softmax(t/T)) averaged over the batch (``batchmean``), without T²: the student's
    distribution first, so the student is pushed off the classes the teacher gives little mass
    (mode-seeking), where ``soft_kl``'s forward KL makes it cover every class the teacher covers."""
    log_p_student, log_p_teacher = log_probabilities(student_logits, teacher_logits, T)
    return kl_rows(log_p_student, log_p_teacher)


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

    log_p_student, log_p_teacher = log_probabilities(student_logits, teacher_logits, T)
    if beta == 0:
        return kl_rows(log_p_teacher, log_p_student)
    if beta == 1:
        return kl_rows(log_p_student, log_p_teacher)
    log_m = torch.logsumexp(torch.stack([log_p_teacher + math.log(beta), log_p_student + math.log1p(-beta)]), dim=0)
    return beta * kl_rows(log_p_teacher, log_m) + (1.0 - beta) * kl_rows(log_p_student, log_m)


def labelled_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the labelled rows of the batch only (mean over them); rows labelled ``UNLABELLED``
    (transfer rows, learnt from the teacher's soft targets only) are masked out (``F.cross_entropy``'s own
    ``ignore_index``). A batch without a labelled row gives 0 with a gradient of 0, where the mean would be
    0/0. The sum over the count equals ``F.cross_entropy``'s mean bit for bit, and needs no host sync per
    step on a GPU."""
    import torch.nn.functional as F

    check_rows(student_logits, labels=labels)
    labels = labels.long()
    count = (labels != UNLABELLED).sum().clamp(min=1)
    return F.cross_entropy(_at_least_float32(student_logits), labels, ignore_index=UNLABELLED,
                           reduction="sum") / count


def check_rows(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> None:
    """Refuse (``ValueError``) what the losses would broadcast or misread: logits that are not (N, classes), a
    teacher of another shape, labels that are not N class indices (one-hot rows or probabilities, a wrong count).
    Shapes and dtypes only: no host sync."""
    import torch

    shape = list(student_logits.shape)
    if student_logits.ndim != 2:
        raise ValueError(f"student logits of shape {shape}: the losses take rows, (N, classes); flatten a language "
                         "model's (batch, length, vocab) to (batch·length, vocab) and its labels to (batch·length,)")
    if teacher_logits is not None and list(teacher_logits.shape) != shape:
        raise ValueError(f"teacher logits of shape {list(teacher_logits.shape)}, the student's {shape}: one teacher "
                         "row per student row, over the same classes")
    if labels is not None:
        if labels.ndim != 1 or len(labels) != shape[0]:
            raise ValueError(f"labels of shape {list(labels.shape)} for {shape[0]} rows of logits: one class index "
                             f"per row, shape ({shape[0]},); one-hot rows or probabilities: their argmax(-1)")
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"labels of dtype {labels.dtype}: class indices of an integer dtype (-100: no label)")


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """float16 and bfloat16 logits as float32 (a softmax over many classes loses the small probabilities in half
    precision, and a KL can come out negative); float32 and float64 as they are."""
    import torch

    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def hard_terms(student_logits: torch.Tensor, teacher_logits, labels: torch.Tensor) -> LossTerms:
    """Cross-entropy on the hard labels only: the baseline; ignores any teacher."""
    ce = labelled_ce(student_logits, labels)
    return LossTerms(ce, {"ce": ce})
