"""``rkd``: Park, Kim, Lu & Cho (CVPR 2019), "Relational Knowledge Distillation" (distance- and angle-wise)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms
from ..schema import FLOAT, INT, Field, non_negative
from . import _features
from .base import Method
from .kd import kd_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch

EPS = 1e-12
MIN_DISTANCE = EPS ** 0.5  # the distance of coincident rows (the square root of the clamp)


def pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    """``‖e_i − e_j‖`` for the rows of ``e`` (N, D): (N, N). The squared distance is clamped at 1e-12 before
    the root (as in the authors' code), so that coincident rows have a finite gradient."""
    return (e[:, None] - e[None]).pow(2).sum(-1).clamp(min=EPS).sqrt()


def rkd_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Distance-wise term: ``ψ_D(x_i, x_j) = ‖x_i − x_j‖ / μ``, μ the mean distance over the batch's distinct
    pairs; the Huber loss (δ = 1) between the student's and the teacher's ψ_D, averaged over the distinct
    (ordered) pairs i ≠ j (the paper sums over pairs; its code averages). Invariant to scaling either embedding."""
    import torch
    import torch.nn.functional as F

    mask = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
    if not mask.any():
        return student.sum() * 0.0
    psi = [d[mask] / d[mask].mean().clamp(min=EPS) for d in (pairwise_distances(student),
                                                            pairwise_distances(teacher.to(student.dtype)))]
    return F.smooth_l1_loss(psi[0], psi[1])


def triplet_cosines(e: torch.Tensor) -> torch.Tensor:
    """``cos∠e_i e_j e_k = ⟨(e_i − e_j)/‖e_i − e_j‖, (e_k − e_j)/‖e_k − e_j‖⟩`` (the angle at e_j) for the
    rows of ``e`` (N, D), over the N(N−1)(N−2) triplets of distinct i, j, k; in the order of (j, i, k).
    Rows closer than 1e-6 give no direction: a cosine of 0 that passes no gradient (else it would be ~1e12)."""
    import torch

    n = len(e)
    diff = e[None] - e[:, None]  # diff[j, i] = e_i - e_j
    norm = diff.norm(dim=-1, keepdim=True)
    unit = torch.where(norm > MIN_DISTANCE, diff / norm.clamp(min=MIN_DISTANCE), 0.0)
    cos = unit @ unit.transpose(1, 2)  # cos[j, i, k]
    index = torch.arange(n, device=e.device)
    j, i, k = index[:, None, None], index[None, :, None], index[None, None, :]
    return cos[(i != j) & (k != j) & (i != k)]


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Angle-wise term: the Huber loss (δ = 1) between the student's and the teacher's ``cos∠x_i x_j x_k``,
    averaged over the batch's triplets of distinct examples (the paper sums; its code averages)."""
    import torch.nn.functional as F

    if len(student) < 3:
        return student.sum() * 0.0
    return F.smooth_l1_loss(triplet_cosines(student), triplet_cosines(teacher.to(student.dtype)))


def rkd_terms(student_logits, teacher_logits, labels, distance: torch.Tensor, angle: torch.Tensor, T: float,
              alpha: float, distance_weight: float, angle_weight: float) -> LossTerms:
    """``(1-α)·CE + α·T²·KL + λ_D·ψ_D-term + λ_A·ψ_A-term``. α = 0 is the paper's task loss + RKD-DA;
    α > 0 its HKD+RKD."""
    kd = kd_terms(student_logits, teacher_logits, labels, T, alpha)
    loss = kd.loss + distance_weight * distance + angle_weight * angle
    return LossTerms(loss, {**kd.terms, "distance": distance, "angle": angle})


def _loss(inputs, hp):
    student = inputs.student.hidden_states[hp["student_layer"]].flatten(1)
    teacher = inputs.teacher.hidden_states[hp["teacher_layer"]].flatten(1)
    distance = _features.in_float32(rkd_distance, student, teacher)
    angle = _features.in_float32(rkd_angle, student, teacher)
    return rkd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, distance, angle, hp["T"],
                     hp["alpha"], hp["distance_weight"], hp["angle_weight"])


def _layer_check(blocks: dict, hp: dict) -> str | None:
    """An error text when ``kd.rkd.student_layer``/``teacher_layer`` is not a hidden block of its model
    (``blocks``: how many each model has; a model missing is not known yet)."""
    for role in blocks:
        layer, n = hp[f"{role}_layer"], blocks[role]
        if n is not None and layer != -1 and not 1 <= layer <= n:
            return f"kd.rkd.{role}_layer = {layer}: the {role} has hidden blocks 1..{n} (or -1 for the last)"
    return None


def _check_params(params):
    models = _features.described_models(params)
    for role, spec in models:
        if spec["arch"] == "hf":
            return f"needs MLP or CNN teacher and student ({role}.model.arch = 'hf')"
    return _layer_check({role: _features.spec_blocks(spec) for role, spec in models}, params["kd"]["rkd"])


def _check(student, teacher, hp):
    for role, model in (("student", student), ("teacher", teacher)):
        if _features.arch(model) == "hf":
            return f"needs MLP or CNN teacher and student (the {role} is a Hugging Face text model)"
    return _layer_check({"student": _features.num_blocks(student), "teacher": _features.num_blocks(teacher)}, hp)


METHOD = Method(
    name="rkd",
    paper="Park, Kim, Lu & Cho 2019, Relational Knowledge Distillation (CVPR)",
    loss=_loss,
    needs=frozenset({"live_teacher", "hidden_states"}),
    params={
        "student_layer": Field(INT, None, -1, help="the student's embedding: hidden block 1..n (-1: the penultimate)"),
        "teacher_layer": Field(INT, None, -1, help="the teacher's embedding: hidden block 1..n (-1: the penultimate)"),
        "distance_weight": Field(FLOAT, non_negative, 25.0, help="λ_D, the weight of the distance-wise term"),
        "angle_weight": Field(FLOAT, non_negative, 50.0, help="λ_A, the weight of the angle-wise term"),
    },
    terms=("ce", "kd", "distance", "angle"),
    check_params=_check_params,
    check=_check,
    description="the student's embeddings keep the teacher's pairwise distances and triplet angles, plus KD on "
                "live teacher logits",
)
