"""Top-k teacher logits (``teacher.logits_top_k``): what a row keeps, and the full targets rebuilt from it.

A row of C logits ``z`` keeps its k largest logits and their classes, plus two numbers about the other
``m = C − k`` classes R: their mean ``μ = mean_{j∈R} z_j`` and their log-sum-exp ``ℓ = log Σ_{j∈R} exp z_j``
(both at T = 1; any temperature is rebuilt from them, see ``rebuild``). Every logit method then reads the
rebuilt (N, C) logits as ``StepInputs.teacher_logits``, as it reads full ones.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .errors import DistilleryError

PARAM = "teacher.logits_top_k"


def check_top_k(k: int | None, num_labels: int, where: str = PARAM) -> None:
    """Refuse a ``k`` that keeps nothing or everything: 1 ≤ k < C (k = C − 1 is exact; C needs no top-k)."""
    if k is not None and not 1 <= k < num_labels:
        raise DistilleryError(f"{where} = {k}: must be between 1 and {num_labels - 1} (the data has {num_labels} "
                              "classes; null stores every logit)")


def compress(logits: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per row: ``index`` (N, k) int32, the classes of the k largest logits, largest first (ties: lower class
    first); ``top`` (N, k) float32, their logits; ``rest_mean`` and ``rest_lse`` (N,) float32, ``μ`` and ``ℓ`` of
    the other classes."""
    z = np.asarray(logits, np.float64)
    n, c = z.shape
    check_top_k(k, c)
    order = np.argsort(-z, axis=1, kind="stable")
    index, rest = order[:, :k], order[:, k:]
    rest_z = np.take_along_axis(z, rest, axis=1)
    return {
        "index": index.astype(np.int32),
        "top": np.take_along_axis(z, index, axis=1).astype(np.float32),
        "rest_mean": rest_z.mean(axis=1).astype(np.float32) if n else np.zeros(0, np.float32),
        "rest_lse": logsumexp(rest_z, axis=1).astype(np.float32) if n else np.zeros(0, np.float32),
    }


def rest_logits(top: np.ndarray, rest_mean: np.ndarray, rest_lse: np.ndarray, num_labels: int,
                T: float) -> np.ndarray:
    """The one logit ``r_T`` that ``rebuild`` gives every other class of a row, float64 (N,) (see there)."""
    m = num_labels - top.shape[1]
    mu, lse = rest_mean.astype(np.float64), rest_lse.astype(np.float64)
    bounds = np.stack([lse - np.log(m), lse - T * np.log(m)])
    rest = np.clip(mu + (lse - np.log(m) - mu) / T, bounds.min(0), bounds.max(0))
    return np.minimum(rest, top[:, -1].astype(np.float64))


def rebuild(index: np.ndarray, top: np.ndarray, rest_mean: np.ndarray, rest_lse: np.ndarray, num_labels: int,
            T: float) -> np.ndarray:
    """Full (N, C) float32 logits for a loss at temperature ``T``: the stored top-k logits, and every one of the
    other ``m = C − k`` classes at one logit

        r_T = μ + (ℓ − log m − μ) / T,   clipped to [ℓ − log m, ℓ − T·log m] (either order) and to ≤ z_(k),

    so that their softmax mass at T, ``m · exp(r_T / T)``, which is ``m · exp(μ/T + (ℓ − log m − μ)/T²)``, is

    - exact at T = 1 (``exp ℓ``: the top-k probabilities and the rest's mass of the stored row, exactly);
    - exact as T → ∞ to first order in 1/T (the row's mean logit is kept, so the centred top-k logits that
      Hinton's high-temperature limit matches are exact);
    - the expected mass ``m · E[exp(z/T)] = m · exp(μ/T + σ²/(2T²))`` if the other logits were Gaussian
      (mean μ, variance σ²), since then ``ℓ − log m ≈ μ + σ²/2``.

    The clips are bounds the true mass obeys at any T (power means: between ``m·exp((ℓ − log m)/T)`` and
    ``exp(ℓ/T)``; no other class above the k-th largest stored logit ``z_(k)``); they bind only for skewed rests
    or T < 1. The approximation: the rest's mass is spread evenly over its classes, and for T ≠ 1 its total is
    the estimate above. With k = C − 1 the row is exact at every T (one rest class: ``μ = ℓ``). Rebuilt at T,
    the logits are meant for ``softmax(z/T)``.
    """
    rest = rest_logits(top, rest_mean, rest_lse, num_labels, T)
    out = np.repeat(rest[:, None], num_labels, axis=1)
    np.put_along_axis(out, index.astype(np.int64), top.astype(np.float64), axis=1)
    return out.astype(np.float32)
