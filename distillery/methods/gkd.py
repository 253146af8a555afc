"""``gkd``: the generalized Jensen–Shannon divergence of Agarwal, Vieillard, Zhou, Stanczyk, Ramos, Geist &
Bachem (ICLR 2024), "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, generalized_jsd, labelled_ce
from ..schema import FLOAT, Field, unit_interval
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


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
