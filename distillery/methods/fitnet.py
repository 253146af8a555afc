"""``fitnet``: Romero et al. (ICLR 2015), "FitNets: Hints for Thin Deep Nets"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms
from ..schema import FLOAT, INT, Field, non_negative
from . import _features
from .base import Method
from .kd import kd_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch
    from torch import nn


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor: nn.Module) -> torch.Tensor:
    """FitNets' hint term ``½·‖u_h(x) − r(v_g(x))‖²``, averaged over the batch: the teacher's hint layer
    ``u_h`` against the student's guided layer ``v_g`` mapped to the teacher's width by the regressor ``r``.
    (The squared norm is summed over a row's features, then averaged over rows.)"""
    mapped = regressor(student_features)
    return 0.5 * (mapped - teacher_features.to(mapped.dtype)).pow(2).flatten(1).sum(1).mean()


def fitnet_terms(student_logits, teacher_logits, labels, hint: torch.Tensor, T: float, alpha: float, weight: float,
                 hint_only: bool) -> LossTerms:
    """``(1-α)·CE + α·T²·KL + β·hint`` (Romero et al.'s second stage is Hinton's KD; ``β = weight`` keeps the
    hint on during it). ``hint_only``: the first stage of the stage-wise schedule, ``hint`` alone."""
    kd = kd_terms(student_logits, teacher_logits, labels, T, alpha)
    loss = hint if hint_only else kd.loss + weight * hint
    return LossTerms(loss, {**kd.terms, "hint": hint})


def _loss(inputs, hp):
    # hidden_states[0] is the input, so a block number is its index and -1 the last block
    hint = hint_loss(inputs.student.hidden_states[hp["student_layer"]],
                     inputs.teacher.hidden_states[hp["teacher_layer"]], inputs.helpers["regressor"])
    hint_only = inputs.step < hp["hint_steps"]
    return fitnet_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, hint, hp["T"], hp["alpha"],
                        hp["weight"], hint_only)


def _indices(student, teacher, hp) -> tuple[int, int]:
    return (_features.block_index(student, hp["student_layer"], "kd.fitnet.student_layer"),
            _features.block_index(teacher, hp["teacher_layer"], "kd.fitnet.teacher_layer"))


def _check(student, teacher, hp):
    try:
        s_index, t_index = _indices(student, teacher, hp)
    except ValueError as exc:
        return str(exc)
    s_shape, t_shape = _features.feature_shape(student, s_index), _features.feature_shape(teacher, t_index)
    if len(s_shape) != len(t_shape) or s_shape[1:] != t_shape[1:]:
        return (f"the student's block {s_index} gives features of shape {s_shape} and the teacher's block {t_index} "
                f"{t_shape}: a regressor maps widths (channels) only, so the rest must match")
    return None


def _helpers(student, teacher, hp):
    from torch import nn

    s_index, t_index = _indices(student, teacher, hp)
    regressor = _features.projection(_features.feature_shape(student, s_index), _features.feature_shape(teacher, t_index))
    return nn.ModuleDict({"regressor": regressor})


METHOD = Method(
    name="fitnet",
    paper="Romero et al. 2015, FitNets: Hints for Thin Deep Nets (ICLR)",
    loss=_loss,
    needs=frozenset({"live_teacher", "hidden_states", "helpers"}),
    params={
        "student_layer": Field(INT, None, -1, help="the student's guided layer (hidden block 1..n, -1: the last)"),
        "teacher_layer": Field(INT, None, -1, help="the teacher's hint layer (hidden block 1..n, -1: the last)"),
        "weight": Field(FLOAT, non_negative, 1.0, help="β, the weight of the hint term"),
        "hint_steps": Field(INT, non_negative, 0,
                            help="stage-wise schedule: the first N steps train on the hint alone (0: off)"),
    },
    terms=("ce", "kd", "hint"),
    check=_check,
    make_helpers=_helpers,
    description="a regressor maps a student layer onto a teacher layer (MSE), plus KD on live teacher logits",
)
