"""``tinybert``: Jiao et al. (Findings of EMNLP 2020), "TinyBERT: Distilling BERT for Natural Language
Understanding" — transformer-layer distillation of text models (``arch: hf``).

Loss: ``(1-α)·CE + α·T²·KL + β·(emb + hidden + attn)`` with ``emb = MSE(E_S·W_e, E_T)`` (``hidden_states[0]``),
``hidden = Σ_m MSE(H_S^m·W_h, H_T^g(m))`` and ``attn = Σ_m (1/h)·Σ_i MSE(A_S,i^m, A_T,i^g(m))`` over the mapped
student layers m; ``g(m) = m·N/M`` unless ``kd.tinybert.layer_map`` gives it. ``W_e`` and ``W_h`` (one for all
layers, as in the paper) are trainable linear maps, also when the widths match. Differences from the paper's
code: the attention maps are the softmax probabilities (what ``transformers`` returns), not the scores, and
padding positions (``attention_mask`` = 0) count in no term.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms
from ..schema import FLOAT, INT, LIST, Field, non_negative, positive_int_list
from . import _features
from .base import Method
from .kd import kd_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch
    from torch import nn


def _masked_mean(squares: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``squares`` over the entries ``keep`` (broadcast to its shape; None: all) marks 1."""
    if keep is None:
        return squares.mean()
    keep = keep.to(squares.dtype).expand_as(squares)
    return (squares * keep).sum() / keep.sum()


def hidden_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, projection: nn.Module,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """TinyBERT's embedding and hidden-state terms ``MSE(H_S·W + b, H_T)`` on token states ``(batch, length,
    width)``: the squared error averaged over the teacher's width and the tokens ``mask`` keeps
    (``attention_mask``: 1 = token, 0 = padding; None: every position)."""
    mapped = projection(student_hidden)
    squares = (mapped - teacher_hidden.to(mapped.dtype)).pow(2)
    return _masked_mean(squares, None if mask is None else mask[:, :, None])


def attention_mse(student_attention: torch.Tensor, teacher_attention: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """TinyBERT's attention term ``(1/h)·Σ_i MSE(A_i^S, A_i^T)`` on maps ``(batch, heads, length, length)``:
    each head's squared error averaged over the (query, key) pairs of two tokens ``mask`` keeps, then over the
    heads. With different head counts the head-averaged maps are compared instead."""
    teacher_attention = teacher_attention.to(student_attention.dtype)
    if student_attention.shape[1] != teacher_attention.shape[1]:
        student_attention = student_attention.mean(dim=1, keepdim=True)
        teacher_attention = teacher_attention.mean(dim=1, keepdim=True)
    squares = (student_attention - teacher_attention).pow(2)
    keep = None if mask is None else mask[:, None, :, None] * mask[:, None, None, :]
    return _masked_mean(squares, keep)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """The paper's uniform mapping ``g(m) = m·N/M`` (rounded down) for student layers m = 1..M."""
    return [m * teacher_layers // student_layers for m in range(1, student_layers + 1)]


def tinybert_terms(student_logits, teacher_logits, labels, emb: torch.Tensor, hidden: torch.Tensor,
                   attn: torch.Tensor, T: float, alpha: float, weight: float, intermediate_only: bool) -> LossTerms:
    """``(1-α)·CE + α·T²·KL + β·(emb + hidden + attn)``, ``β = weight``; KL is Hinton's KD on the teacher's
    logits (TinyBERT's prediction-layer term). ``intermediate_only``: the paper's first stage of task
    distillation, ``emb + hidden + attn`` alone."""
    kd = kd_terms(student_logits, teacher_logits, labels, T, alpha)
    intermediate = emb + hidden + attn
    loss = intermediate if intermediate_only else kd.loss + weight * intermediate
    return LossTerms(loss, {**kd.terms, "emb": emb, "hidden": hidden, "attn": attn})


def _layer_map(hp, student_layers: int, teacher_layers: int) -> list[int]:
    return hp["layer_map"] or uniform_layer_map(student_layers, teacher_layers)


def _loss(inputs, hp):
    s, t, projections = inputs.student, inputs.teacher, inputs.helpers
    mask = (inputs.inputs or {}).get("attention_mask")
    layer_map = _layer_map(hp, len(s.hidden_states) - 1, len(t.hidden_states) - 1)
    emb = hidden_mse(s.hidden_states[0], t.hidden_states[0], projections["embedding"], mask)
    # hidden_states[m] is the output of layer m (1-based), attentions[m - 1] its attention maps
    hidden = sum(hidden_mse(s.hidden_states[m], t.hidden_states[g], projections["hidden"], mask)
                 for m, g in enumerate(layer_map, start=1))
    attn = sum(attention_mse(s.attentions[m - 1], t.attentions[g - 1], mask) for m, g in enumerate(layer_map, start=1))
    return tinybert_terms(s.logits, inputs.teacher_logits, inputs.labels, emb, hidden, attn, hp["T"], hp["alpha"],
                          hp["weight"], inputs.step < hp["intermediate_steps"])


def _check_params(params):
    archs = {role: params[role]["model"]["arch"] for role in ("teacher", "student")}
    if set(archs.values()) != {"hf"}:
        return (f"needs transformer (arch: hf) teacher and student; teacher.model.arch = {archs['teacher']!r}, "
                f"student.model.arch = {archs['student']!r}")
    return None


def _check(student, teacher, hp):
    archs = {"student": _features.arch(student), "teacher": _features.arch(teacher)}
    if set(archs.values()) != {"hf"}:
        return f"needs transformer (arch: hf) teacher and student; the models are {archs}"
    m, n = _features.num_blocks(student), _features.num_blocks(teacher)
    layer_map = hp["layer_map"]
    if layer_map is None:
        if m > n:
            return (f"the student has {m} layers and the teacher only {n}: the uniform mapping needs a teacher at "
                    "least as deep; give kd.tinybert.layer_map")
        return None
    if len(layer_map) > m:
        return f"kd.tinybert.layer_map = {layer_map} maps {len(layer_map)} student layers; the student has {m}"
    bad = [g for g in layer_map if g > n]
    if bad:
        return f"kd.tinybert.layer_map = {layer_map}: the teacher has layers 1..{n}, not {bad}"
    return None


def _helpers(student, teacher, hp):
    from torch import nn

    widths = _features.feature_shape(student, 0), _features.feature_shape(teacher, 0)
    return nn.ModuleDict({"embedding": _features.projection(*widths), "hidden": _features.projection(*widths)})


METHOD = Method(
    name="tinybert",
    paper="Jiao et al. 2020, TinyBERT: Distilling BERT for Natural Language Understanding (Findings of EMNLP)",
    loss=_loss,
    needs=frozenset({"live_teacher", "hidden_states", "attentions", "helpers"}),
    params={
        "layer_map": Field(LIST, positive_int_list, None, nullable=True,
                           help="the teacher layer of student layer 1, 2, ... (later student layers unmapped); "
                                "null: uniform g(m) = m·N/M"),
        "weight": Field(FLOAT, non_negative, 1.0, help="β, the weight of emb + hidden + attn"),
        "intermediate_steps": Field(INT, non_negative, 0,
                                    help="two-stage schedule: the first N steps train on emb + hidden + attn alone "
                                         "(0: off)"),
    },
    terms=("ce", "kd", "emb", "hidden", "attn"),
    check_params=_check_params,
    check=_check,
    make_helpers=_helpers,
    description="embedding, hidden-state (through learned W_e, W_h) and attention MSE per mapped layer, plus KD "
                "on live teacher logits",
)
