"""``minillm``: the sequence-level reverse KL of Gu, Dong, Wei & Huang (ICLR 2024), "MiniLLM: Knowledge
Distillation of Large Language Models", optimised by policy gradient on the student's own samples. Language models
only.

On a fraction λ (``student_data_fraction``) of the training steps from ``start_step`` on, the batch's prompts are
continued by the student, each token drawn from the teacher-mixed distribution p̃ = ``teacher_mix``·p + (1 −
``teacher_mix``)·q (``models.causal_lm.TeacherMixture``), and the live teacher scores the sequences; the other steps
train on the corpus (the paper's language-modelling loss L_PT, with the teacher's soft targets as in its code's
``kd_ratio``). One update per sample, so PPO's ratio is 1 in value and its clip acts on the importance weight.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..schema import BOOL, FLOAT, Field, open_fraction, unit_interval
from ._sampling import SAMPLING_PARAMS, check_sampling
from .base import Method
from .kd import kd_terms
from .losses import LossTerms, reverse_soft_kl

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def length_normalised_returns(rewards: torch.Tensor, token_index: tuple[torch.Tensor, torch.Tensor],
                              shape: tuple[int, int]) -> torch.Tensor:
    """Per token row, the mean reward of its sequence's tokens from it on: R_t = Σ_{t' ≥ t} r_t' / #{t' ≥ t}
    (MiniLLM's length normalisation, discount 1). ``token_index`` is each row's (sequence, position) in a batch of
    ``shape`` (B, L)."""
    import torch

    def from_each_token_on(values):  # the sum over a sequence's rows from each row on
        dense = torch.zeros(shape, dtype=values.dtype, device=values.device).index_put(token_index, values)
        return dense.flip(1).cumsum(1).flip(1)[token_index]

    return from_each_token_on(rewards) / from_each_token_on(torch.ones_like(rewards))


def minillm_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                  token_index: tuple[torch.Tensor, torch.Tensor], shape: tuple[int, int], T: float, alpha: float,
                  sampled: bool, teacher_mix: float, clip: float, whiten: bool = True) -> LossTerms:
    """Gu et al. (2024), per token row (logits flattened to (N, V), q the student, p the teacher, at T = 1).

    On the student's samples y (drawn from p̃ = m·p + (1 − m)·q, m = ``teacher_mix``; the labels are y):

        r_t = log p(y_t) − log q(y_t),  R_t = mean of r_t' over t' ≥ t in its sequence,  A_t = R_t whitened over
        the batch's tokens (``whiten``; else A_t = R_t),  w_t = q(y_t) / p̃(y_t),  ρ_t = w_t · q(y_t) / sg(q(y_t)),
        pg = mean_t max(−A_t·ρ_t, −A_t·clip(ρ_t, 1 − ε, 1 + ε)),  reverse_kl = mean_t KL(q_t ‖ p_t),

    the loss ``pg + reverse_kl``: the policy gradient of the sequence-level reverse KL (A_t and w_t carry no
    gradient) and its single-step part, the exact per-token reverse KL over the vocabulary. As in the authors' code
    (microsoft/LMOps ``minillm``), R_t counts r_t itself and the whitening is over the tokens (mean 0, variance 1,
    Bessel's correction; 0 for a single token). Whitened, the policy-gradient term keeps its size however small the
    rewards get as the student nears the teacher. On the corpus: ``(1-α)·CE(y, s) + α·T²·KL(softmax(t/T) ‖
    softmax(s/T))``, ``kd``'s loss with the live teacher (α = 0: the paper's L_PT alone)."""
    import torch
    import torch.nn.functional as F

    if not sampled:
        return kd_terms(student_logits, teacher_logits, labels, T, alpha)
    teacher_logits = teacher_logits.to(student_logits.dtype)
    log_q = F.log_softmax(student_logits, -1).gather(1, labels[:, None])[:, 0]
    log_p = F.log_softmax(teacher_logits, -1).gather(1, labels[:, None])[:, 0].detach()
    returns = length_normalised_returns((log_p - log_q).detach(), token_index, shape)
    if not whiten:
        advantages = returns
    elif len(returns) > 1:
        variance, mean = torch.var_mean(returns)
        advantages = (returns - mean) * torch.rsqrt(variance + 1e-8)
    else:
        advantages = torch.zeros_like(returns)
    ratio = torch.exp(log_q - log_q.detach())
    if teacher_mix > 0:
        import math

        student_share = math.log1p(-teacher_mix) if teacher_mix < 1 else -math.inf
        log_mixture = torch.logaddexp(log_p + math.log(teacher_mix), log_q.detach() + student_share)
        ratio = ratio * torch.exp(log_q.detach() - log_mixture)
    pg = torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)).mean()
    reverse_kl = reverse_soft_kl(student_logits, teacher_logits, 1.0)
    return LossTerms(pg + reverse_kl, {"pg": pg, "reverse_kl": reverse_kl})


METHOD = Method(
    name="minillm",
    paper="Gu, Dong, Wei & Huang 2024, MiniLLM: Knowledge Distillation of Large Language Models (ICLR)",
    loss=lambda inputs, hp: minillm_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                          inputs.token_index, tuple(inputs.inputs["input_ids"].shape), hp["T"],
                                          hp["alpha"], inputs.sampled, hp["teacher_mix"], hp["clip"], hp["whiten"]),
    needs=frozenset({"live_teacher", "student_samples"}),
    params={
        **SAMPLING_PARAMS,
        "teacher_mix": Field(FLOAT, unit_interval, 0.2,
                             help="the teacher's weight in the distribution the student samples from (the paper's "
                                  "0.2; 0: the student's own distribution)"),
        "clip": Field(FLOAT, open_fraction, 0.2, help="ε of PPO's clip on the importance weight of a sampled token"),
        "whiten": Field(BOOL, None, True, help="whiten the returns over the batch's tokens (the authors' code); "
                                               "false: the returns as they are"),
    },
    terms=("ce", "kd", "pg", "reverse_kl"),
    check_params=lambda params: check_sampling(params, "minillm"),
    description="the sequence-level reverse KL by policy gradient on the student's teacher-mixed samples, on a "
                "fraction of the steps (language models)",
)
