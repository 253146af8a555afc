"""``on_policy_gkd``: generalized knowledge distillation on the student's own samples, Agarwal, Vieillard, Zhou,
Stanczyk, Ramos, Geist & Bachem (ICLR 2024), "On-Policy Distillation of Language Models: Learning from
Self-Generated Mistakes" (TRL's ``GKDTrainer``). Language models only.

On a fraction λ (``student_data_fraction``) of the training steps from ``start_step`` on, the batch's prompts are
continued by the student (``models.causal_lm.continue_prompts``) and the live teacher scores those sequences; the
other steps train on the corpus. Which steps sample is decided by the seed and the step alone: the same on a resumed
run and in every process.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..schema import FLOAT, Field, positive, unit_interval
from ._sampling import SAMPLING_PARAMS, check_sampling
from .base import Method
from .losses import LossTerms, generalized_jsd, labelled_ce

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def on_policy_gkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, T: float,
                        alpha: float, beta: float, sampled: bool) -> LossTerms:
    """Agarwal et al. (2024), the GKD objective with ``gkd``'s terms: on the corpus ``(1-α)·CE(y, s) + α·T²·JSD_β(t ‖ s)``
    (``gkd``'s loss, the teacher run live); on the student's samples ``α·T²·JSD_β(t ‖ s)`` alone, since a sampled
    token is no label (its ``terms`` then hold ``jsd`` only). Per token, batchmean over the target tokens.
    α = 1 is the paper's objective, the JSD on both."""
    jsd = generalized_jsd(student_logits, teacher_logits, T, beta) * (T * T)
    if sampled:
        return LossTerms(alpha * jsd, {"jsd": jsd})
    ce = labelled_ce(student_logits, labels)
    return LossTerms((1.0 - alpha) * ce + alpha * jsd, {"ce": ce, "jsd": jsd})


METHOD = Method(
    name="on_policy_gkd",
    paper="Agarwal et al. 2024, On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes "
          "(ICLR)",
    loss=lambda inputs, hp: on_policy_gkd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                                hp["T"], hp["alpha"], hp["beta"], inputs.sampled),
    needs=frozenset({"live_teacher", "student_samples"}),
    params={
        "beta": Field(FLOAT, unit_interval, 0.5,
                      help="β of the generalized JSD: the teacher's weight in the mixture; 0: forward KL (kd's), "
                           "1: reverse KL (reverse_kl's)"),
        **SAMPLING_PARAMS,
        "temperature": Field(FLOAT, positive, 1.0, help="the student's sampling temperature (1: its distribution)"),
    },
    terms=("ce", "jsd"),
    check_params=lambda params: check_sampling(params, "on_policy_gkd"),
    description="gkd's JSD on the student's own samples, scored by the live teacher, on a fraction of the steps "
                "(language models)",
)
