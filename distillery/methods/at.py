"""``at``: Zagoruyko & Komodakis (ICLR 2017), "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer" (activation-based attention)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms
from ..schema import FLOAT, LIST, Field, non_negative, positive
from . import _features
from .base import Method
from .kd import kd_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def attention_map(features: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """The spatial attention map of feature maps ``F`` (N, C, H, W): ``Q = vec(mean_c |F_c|^p)``, L2-normalised
    per example: (N, H·W)."""
    import torch.nn.functional as F

    return F.normalize(features.abs().pow(p).mean(1).flatten(1), dim=1)


def at_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """One layer pair's term as in the authors' code (``(at(x) - at(y)).pow(2).mean()``): the squared difference
    of the normalised attention maps ``Q̂ = Q/‖Q‖``, averaged over the batch and the H·W positions. (The paper
    writes ``‖Q̂_s − Q̂_t‖_2`` with β "divided by the number of elements in attention map and batch size".)"""
    q_s = attention_map(student_features, p)
    q_t = attention_map(teacher_features.to(student_features.dtype), p)
    return (q_s - q_t).pow(2).mean()


def at_terms(student_logits, teacher_logits, labels, at: torch.Tensor, T: float, alpha: float,
             beta: float) -> LossTerms:
    """``(1-α)·CE + α·T²·KL + β/2·Σ_j at_loss_j`` (``at``: the sum over layer pairs j). α = 0 is the paper's
    AT alone; α > 0 its AT+KD."""
    kd = kd_terms(student_logits, teacher_logits, labels, T, alpha)
    return LossTerms(kd.loss + beta / 2 * at, {**kd.terms, "at": at})


def _pairs(layers, n_student: int, n_teacher: int | None) -> list[tuple[int, int]]:
    """Indices of the paired feature maps in ``hidden_states`` (conv block i is ``hidden_states[i]``); the
    default pairs the blocks of the same number, which see the same spatial size."""
    if layers is None:
        return [(i, i) for i in range(1, min(n_student, n_teacher) + 1)]
    return _features.pair_indices(_features.layer_pairs(layers), n_student, n_teacher, "kd.at.layers")


def _conv_blocks(hidden_states) -> int:
    return sum(h.dim() == 4 for h in hidden_states[1:])


def _loss(inputs, hp):
    import torch

    student, teacher = inputs.student.hidden_states, inputs.teacher.hidden_states
    pairs = _pairs(hp["layers"], _conv_blocks(student), _conv_blocks(teacher))
    at = torch.stack([_features.in_float32(at_loss, student[s], teacher[t], p=hp["p"]) for s, t in pairs]).sum()
    return at_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, at, hp["T"], hp["alpha"],
                    hp["beta"])


def _check_params(params):
    models = _features.described_models(params)
    for role, spec in models:
        if spec["arch"] != "cnn":
            return f"needs CNN teacher and student ({role}.model.arch = {spec['arch']!r})"
    layers = params["kd"]["at"]["layers"]
    if layers is not None:
        counts = {role: len(spec["channels"]) for role, spec in models}
        try:
            _features.pair_indices(_features.layer_pairs(layers), counts["student"], counts.get("teacher"),
                                   "kd.at.layers")
        except ValueError as exc:
            return str(exc)
    return None


def _check(student, teacher, hp):
    for role, model in (("student", student), ("teacher", teacher)):
        if _features.arch(model) != "cnn":
            return f"needs CNN teacher and student (the {role} is an {_features.arch(model)} model)"
    try:
        pairs = _pairs(hp["layers"], len(student.config.channels), len(teacher.config.channels))
    except ValueError as exc:
        return str(exc)
    for s, t in pairs:
        s_size, t_size = _features.feature_shape(student, s)[1:], _features.feature_shape(teacher, t)[1:]
        if s_size != t_size:
            return (f"kd.at.layers: the student's block {s} gives {s_size[0]}x{s_size[1]} attention maps and the "
                    f"teacher's block {t} {t_size[0]}x{t_size[1]}; a pair needs one spatial size")
    return None


METHOD = Method(
    name="at",
    paper="Zagoruyko & Komodakis 2017, Paying More Attention to Attention (ICLR)",
    loss=_loss,
    needs=frozenset({"live_teacher", "hidden_states"}),
    params={
        "layers": Field(LIST, _features.check_layer_pairs, None, nullable=True,
                        help="conv blocks to pair: a number for both models or [student, teacher] (1..n, -1: the "
                             "last); null: every block number both have"),
        "beta": Field(FLOAT, non_negative, 1000.0, help="β, the weight of the attention term (β/2·Σ at)"),
        "p": Field(FLOAT, positive, 2.0, help="the attention map is the channel mean of |F|^p"),
    },
    terms=("ce", "kd", "at"),
    check_params=_check_params,
    check=_check,
    description="student feature maps match the teacher's spatial attention maps, plus KD on live teacher logits",
)
