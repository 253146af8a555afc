"""``logit_std``: Sun, Ren, Li, Wang & Cao (CVPR 2024), "Logit Standardization in Knowledge Distillation"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce, soft_kl
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def standardize(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """The Z-score of each row, ``(z − mean(z)) / (std(z) + eps)`` (unbiased std, as the official code)."""
    return (logits - logits.mean(-1, keepdim=True)) / (logits.std(-1, keepdim=True) + eps)


def logit_std_terms(student_logits, teacher_logits, labels, T: float, alpha: float) -> LossTerms:
    """Sun et al. (2024): Hinton's loss on Z-scored logits,
    ``(1-α)·CE(y, s) + α·T²·KL(softmax(Z(t)/T) ‖ softmax(Z(s)/T))``: the student matches the teacher's logit
    *relations*, not their range, so a teacher's scale or shift per row does not change the target.
    ``terms``: the unweighted ``ce`` and the T²-scaled ``kd`` term."""
    ce = labelled_ce(student_logits, labels)
    kd = soft_kl(standardize(student_logits), standardize(teacher_logits.to(student_logits.dtype)), T) * (T * T)
    return LossTerms((1.0 - alpha) * ce + alpha * kd, {"ce": ce, "kd": kd})


def _check_params(params):
    if params["teacher"]["logits_top_k"] is not None:
        return ("it Z-scores the teacher's logits with their mean and std over every class, which "
                "teacher.logits_top_k does not keep (only the rest's mean and log-sum-exp): set teacher.logits_top_k "
                "to null")
    return None


METHOD = Method(
    name="logit_std",
    paper="Sun, Ren, Li, Wang & Cao 2024, Logit Standardization in Knowledge Distillation (CVPR)",
    loss=lambda inputs, hp: logit_std_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                            hp["T"], hp["alpha"]),
    terms=("ce", "kd"),
    check_params=_check_params,
    description="Hinton's KD on Z-scored student and teacher logits (stored teacher logits)",
)
