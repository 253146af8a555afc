"""``multi_teacher``: distillation from an ensemble of teachers (Hinton et al. 2015, section 3; Fukuda et al.
2017, "Efficient Knowledge Distillation from an Ensemble of Teachers"), each teacher trained and scored by its
own DVC stage (``teachers.<name>``) and stored once, like the teacher's logits."""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp

from ..schema import STR, Field, one_of
from .base import Method
from .kd import kd_terms

RULES = ("mean", "geometric", "accuracy")


def ensemble_targets(logits: np.ndarray, weights: np.ndarray, T: float, rule: str) -> np.ndarray:
    """Target logits ``z`` (N, C) of teachers' logits (N, K, C) at temperature T, so that ``softmax(z/T)`` is:

    - ``mean``/``accuracy``: the weighted arithmetic mean of the teachers' probabilities ``Σ_k w_k·softmax(t_k/T)``;
    - ``geometric``: their weighted geometric mean, renormalised: ``softmax(Σ_k w_k·log_softmax(t_k/T))``.

    ``weights`` (K,) are normalised to sum to 1 (``mean`` and ``geometric`` use equal weights, ``accuracy`` the
    teachers' validation accuracies).
    """
    k = logits.shape[1]
    w = np.full(k, 1.0 / k) if rule != "accuracy" else np.asarray(weights, np.float64) / np.sum(weights)
    log_p = log_softmax(logits.astype(np.float64) / T, axis=-1)
    if rule == "geometric":
        combined = log_softmax(np.einsum("k,nkc->nc", w, log_p), axis=-1)
    else:
        with np.errstate(divide="ignore"):  # a teacher of weight 0 adds exp(-inf) = 0
            combined = logsumexp(log_p + np.log(w)[None, :, None], axis=1)
    return (T * combined).astype(np.float32)


def _combine(logits, accuracies, hp):
    return ensemble_targets(logits, accuracies, hp["T"], hp["combine"])


def _check_params(params):
    if not params["teachers"]:
        return ("needs at least one more teacher under `teachers` (name -> overrides of the teacher block, "
                "e.g. teachers: {wide: {model: {hidden_sizes: [512, 512]}, seed: 1}})")
    return None


METHOD = Method(
    name="multi_teacher",
    paper="Hinton et al. 2015 (ensembles as teachers); Fukuda et al. 2017, Efficient Knowledge Distillation "
          "from an Ensemble of Teachers (Interspeech)",
    loss=lambda inputs, hp: kd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, hp["T"],
                                     hp["alpha"]),
    needs=frozenset({"teachers"}),
    params={"combine": Field(STR, one_of(*RULES), "mean",
                             help="mean (of probabilities) | geometric (mean of log-probabilities) | accuracy "
                                  "(mean weighted by each teacher's validation accuracy)")},
    terms=("ce", "kd"),
    check_params=_check_params,
    combine=_combine,
    description="Hinton's KD on the combined soft targets of the teacher and every teachers.<name>",
)
