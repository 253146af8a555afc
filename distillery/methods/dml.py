"""``dml``: Zhang, Xiang, Hospedales & Lu (CVPR 2018), "Deep Mutual Learning".

No teacher: ``kd.dml.peers`` students train beside the saved one (peer 0 of the cohort), each from its
own initialisation, all updated by one optimiser on the summed loss (AdamW is per parameter, so each
student moves as if alone with its own loss). With α = 0 the saved student is the hard student exactly,
as long as the student has no dropout (the peers draw dropout masks from the same generator) and
``train.max_grad_norm = 0`` (clipping takes the norm over the whole cohort).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, hard_terms, labelled_ce, soft_kl
from ..schema import INT, Field
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def dml_terms(logits: list[torch.Tensor], labels: torch.Tensor, T: float, alpha: float) -> LossTerms:
    """Deep Mutual Learning for a cohort of K >= 2 students (``logits[0]`` is the main one): student k minimises

        L_k = (1-α)·CE(y, s_k) + α·T²·1/(K-1)·Σ_{l≠k} KL(softmax(s_l/T) ‖ softmax(s_k/T))

    and the loss is the sum Σ_k L_k, so one optimiser step updates every student by the gradient of its
    own L_k. The peers' probabilities are constants for student k (detached): the paper's alternating
    updates, approximated by one simultaneous update. The paper's setting is T = 1 and CE + KL, i.e.
    α = 0.5 up to a factor 2. ``terms``: the main student's ``ce`` and T²-scaled mean ``kl`` to its
    peers, and ``peer_loss`` = Σ_{k>=1} L_k, so ``loss = (1-α)·ce + α·kl + peer_loss``.
    """
    if len(logits) < 2:
        raise ValueError(f"a cohort needs at least 2 students, got {len(logits)}")
    targets = [s.detach() for s in logits]
    losses, ces, kls = [], [], []
    for k, s in enumerate(logits):
        ce = labelled_ce(s, labels)
        kl = sum(soft_kl(s, targets[l], T) for l in range(len(logits)) if l != k) * (T * T / (len(logits) - 1))
        losses.append((1.0 - alpha) * ce + alpha * kl)
        ces.append(ce)
        kls.append(kl)
    return LossTerms(sum(losses), {"ce": ces[0], "kl": kls[0], "peer_loss": sum(losses[1:])})


def _loss(inputs, hp):
    if not inputs.peers:  # evaluation runs the main student alone: its cross-entropy
        return hard_terms(inputs.student.logits, None, inputs.labels)
    return dml_terms([inputs.student.logits] + [p.logits for p in inputs.peers], inputs.labels, hp["T"], hp["alpha"])


def _at_least_one(v):
    return None if v >= 1 else "must be >= 1"


METHOD = Method(
    name="dml",
    paper="Zhang, Xiang, Hospedales & Lu 2018, Deep Mutual Learning (CVPR)",
    loss=_loss,
    needs=frozenset({"peers"}),
    params={
        "peers": Field(INT, _at_least_one, 1,
                       help="students trained beside the saved one, each from its own initialisation (cohort: peers+1)"),
    },
    terms=("ce", "kl", "peer_loss"),
    description="a cohort of students without a teacher, each matching the others' soft predictions (KL)",
)
