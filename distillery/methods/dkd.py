"""``dkd``: Zhao, Cui, Song, Qiu & Liang (CVPR 2022), "Decoupled Knowledge Distillation"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import UNLABELLED, LossTerms, labelled_ce, soft_kl
from ..schema import FLOAT, INT, Field, non_negative
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              T: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TCKD, NCKD)`` at temperature T, batch means, without the T² factor.

    TCKD = KL(b_t ‖ b_s) on the binary probabilities ``b = [p_y, 1 − p_y]`` of softmax(z/T);
    NCKD = KL(p̂_t ‖ p̂_s) on softmax(z/T) over the non-target classes only (renormalised among them).
    Per row, the paper's decomposition holds: KL(p_t ‖ p_s) = TCKD + (1 − p_t[y])·NCKD. With two classes
    NCKD is 0 and TCKD is KD's KL. Unlabelled (transfer) rows take the teacher's top class as their target
    class for this split (the decomposition holds for any class).
    """
    import torch
    import torch.nn.functional as F

    teacher_logits = teacher_logits.to(student_logits.dtype)
    labels = torch.where(labels == UNLABELLED, teacher_logits.argmax(-1), labels)
    target = F.one_hot(labels, student_logits.shape[-1]).bool()
    rows, others = len(labels), student_logits.shape[-1] - 1

    def split(z):
        z = z / T
        non_target = z[~target].view(rows, others)
        # log b = log_softmax([z_y, logsumexp(non-target z)]): the binary split, computed stably
        return torch.stack([z[target], non_target.logsumexp(-1)], dim=-1), non_target

    s_binary, s_non_target = split(student_logits)
    t_binary, t_non_target = split(teacher_logits)
    return soft_kl(s_binary, t_binary, 1.0), soft_kl(s_non_target, t_non_target, 1.0)


def dkd_terms(student_logits, teacher_logits, labels, T: float, alpha: float, beta: float,
              warmup: float = 1.0) -> LossTerms:
    """Zhao et al. (2022): ``CE(y, s) + w·(α·T²·TCKD + β·T²·NCKD)`` (see ``dkd_parts``), where ``w`` in
    [0, 1] is the linear warm-up of the official implementation (mdistiller). ``terms`` holds the
    unweighted ``ce`` and the T²-scaled ``tckd`` and ``nckd``."""
    ce = labelled_ce(student_logits, labels)
    tckd, nckd = (part * (T * T) for part in dkd_parts(student_logits, teacher_logits, labels, T))
    return LossTerms(ce + warmup * (alpha * tckd + beta * nckd), {"ce": ce, "tckd": tckd, "nckd": nckd})


def warmup_factor(step: int, warmup_steps: int) -> float:
    """``min(step / warmup_steps, 1)``; 1 when there is no warm-up."""
    return min(step / warmup_steps, 1.0) if warmup_steps else 1.0


def _loss(inputs, hp):
    return dkd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, hp["T"], hp["alpha"], hp["beta"],
                     warmup_factor(inputs.step, hp["warmup_steps"]))


def _check_params(params):
    steps, max_steps = params["kd"]["dkd"]["warmup_steps"], params["train"]["max_steps"]
    if steps > max_steps:
        return (f"kd.dkd.warmup_steps = {steps} is longer than train.max_steps = {max_steps}: "
                "the distillation terms would never reach their full weight")
    return None


METHOD = Method(
    name="dkd",
    paper="Zhao, Cui, Song, Qiu & Liang 2022, Decoupled Knowledge Distillation (CVPR)",
    loss=_loss,
    params={
        "alpha": Field(FLOAT, non_negative, 1.0, help="α, the weight of TCKD (target-class KD)"),
        "beta": Field(FLOAT, non_negative, 8.0, help="β, the weight of NCKD (non-target-class KD)"),
        "warmup_steps": Field(INT, non_negative, 0,
                              help="linear warm-up of the distillation terms over N steps (0: none)"),
    },
    shared=("T",),
    terms=("ce", "tckd", "nckd"),
    check_params=_check_params,
    description="KD split into target-class and non-target-class terms, weighted apart (stored teacher logits)",
)
