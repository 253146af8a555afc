"""``reverse_kl``: the token-level reverse KL of Gu, Dong, Wei & Huang (ICLR 2024), "MiniLLM: Knowledge
Distillation of Large Language Models", and of on-policy distillation."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce, reverse_soft_kl
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def reverse_kl_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> LossTerms:
    """Gu et al. (2024), per row (per token for a language model, logits flattened to (N, V)):
    ``(1-α)·CE(y, s) + α·T²·KL(softmax(s/T) ‖ softmax(t/T))``, batchmean over rows.

    KD's loss (``kd``) with the KL reversed; the T² factor as in ``kd``. MiniLLM's own objective is the reverse
    KL of whole sequences sampled from the student, optimised by policy gradient (``minillm``); this is its per-token term,
    the one on-policy distillation evaluates on the student's own samples. Rows labelled ``UNLABELLED`` are
    left out of CE and kept in the KL. ``terms`` holds the unweighted ``ce`` and the T²-scaled ``reverse_kl``.
    """
    ce = labelled_ce(student_logits, labels)
    reverse_kl = reverse_soft_kl(student_logits, teacher_logits, T) * (T * T)
    return LossTerms((1.0 - alpha) * ce + alpha * reverse_kl, {"ce": ce, "reverse_kl": reverse_kl})


METHOD = Method(
    name="reverse_kl",
    paper="Gu, Dong, Wei & Huang 2024, MiniLLM: Knowledge Distillation of Large Language Models (ICLR)",
    loss=lambda inputs, hp: reverse_kl_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                             hp["T"], hp["alpha"]),
    terms=("ce", "reverse_kl"),
    description="KD with the KL reversed, KL(student ‖ teacher): mode-seeking (stored teacher logits)",
)
