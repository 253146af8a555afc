"""``label_smoothing``: Yuan, Tay, Li, Wang & Feng (CVPR 2020), "Revisiting Knowledge Distillation via Label
Smoothing Regularization": the teacher-free baseline, KD from a uniform virtual teacher."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce, soft_kl
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def label_smoothing_terms(student_logits: torch.Tensor, labels: torch.Tensor, T: float, alpha: float) -> LossTerms:
    """``(1-α)·CE(y, s) + α·T²·KL(u ‖ softmax(s/T))``, u the uniform distribution over the K classes.

    At T = 1 this is label smoothing: since KL(u ‖ p) = −log K − (1/K)·Σ_k log p_k, the loss equals
    ``F.cross_entropy(s, y, label_smoothing=α) − α·log K``. ``terms`` holds the unweighted ``ce`` and the
    T²-scaled ``uniform`` (the KL to the uniform teacher)."""
    import torch

    ce = labelled_ce(student_logits, labels)
    uniform = soft_kl(student_logits, torch.zeros_like(student_logits), T) * (T * T)  # softmax(0) = u at any T
    return LossTerms((1.0 - alpha) * ce + alpha * uniform, {"ce": ce, "uniform": uniform})


METHOD = Method(
    name="label_smoothing",
    paper="Yuan, Tay, Li, Wang & Feng 2020, Revisiting Knowledge Distillation via Label Smoothing Regularization "
          "(CVPR)",
    loss=lambda inputs, hp: label_smoothing_terms(inputs.student.logits, inputs.labels, hp["T"], hp["alpha"]),
    needs=frozenset(),
    terms=("ce", "uniform"),
    description="teacher-free: KD from a uniform virtual teacher (label smoothing at T = 1); no teacher, no logits",
)
