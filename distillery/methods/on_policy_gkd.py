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

from ..schema import FLOAT, INT, Field, non_negative, positive, unit_interval
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


def _check_params(params):
    if params["task"] != "causal_lm":
        return "samples the student's continuations of text prompts: language models only (task: causal_lm)"
    own, limit = params["kd"]["on_policy_gkd"], params["data"]["max_length"]
    if own["prompt_tokens"] >= limit:
        return (f"kd.on_policy_gkd.prompt_tokens = {own['prompt_tokens']} leaves no room to sample within "
                f"data.max_length = {limit}")
    if own["max_new_tokens"] is not None and own["prompt_tokens"] + own["max_new_tokens"] > limit:
        return (f"kd.on_policy_gkd.prompt_tokens + max_new_tokens = {own['prompt_tokens']} + {own['max_new_tokens']} "
                f"is above data.max_length = {limit} (the longest sequence the models take); null samples up to it")
    if own["start_step"] >= params["train"]["max_steps"]:
        return (f"kd.on_policy_gkd.start_step = {own['start_step']} is not below train.max_steps = "
                f"{params['train']['max_steps']}: no step would sample")
    return None


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
        "student_data_fraction": Field(FLOAT, unit_interval, 0.5,
                                       help="λ: the fraction of training steps on the student's own samples "
                                            "(TRL's lmbda); 0: gkd with a live teacher"),
        "prompt_tokens": Field(INT, positive, 8, help="tokens of each training sequence kept as the prompt the "
                                                      "student continues"),
        "max_new_tokens": Field(INT, positive, None, nullable=True,
                                help="the most tokens the student samples per prompt; null: up to data.max_length"),
        "temperature": Field(FLOAT, positive, 1.0, help="the student's sampling temperature (1: its distribution)"),
        "start_step": Field(INT, non_negative, 0,
                            help="the first training step that may sample; the steps before it train on the corpus "
                                 "(gkd), as the paper starts from a supervised student"),
    },
    terms=("ce", "jsd"),
    check_params=_check_params,
    description="gkd's JSD on the student's own samples, scored by the live teacher, on a fraction of the steps "
                "(language models)",
)
