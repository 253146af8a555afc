"""``kd``: Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce, soft_kl
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


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
    ce = labelled_ce(student_logits, labels)
    kd = soft_kl(student_logits, teacher_logits, T) * (T * T)
    return LossTerms((1.0 - alpha) * ce + alpha * kd, {"ce": ce, "kd": kd})


METHOD = Method(
    name="kd",
    paper="Hinton, Vinyals & Dean 2015, Distilling the Knowledge in a Neural Network",
    loss=lambda inputs, hp: kd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                     hp["T"], hp["alpha"]),
    terms=("ce", "kd"),
    description="soft targets of the stored teacher logits at temperature T",
)
