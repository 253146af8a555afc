"""Classification metrics on logits: pure NumPy functions, checked against hand computations."""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax


def probabilities(logits: np.ndarray) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64), axis=-1)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(logits, axis=-1) == labels).mean())


def macro_f1(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> float:
    from sklearn.metrics import f1_score

    preds = np.argmax(logits, axis=-1)
    return float(f1_score(labels, preds, labels=np.arange(num_labels), average="macro", zero_division=0))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (natural log)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def reliability_bins(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label confidence in ``n_bins`` equal-width bins ``(lo, hi]``: count, mean confidence, accuracy."""
    probs = probabilities(logits)
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds edges[b] < confidence <= edges[b+1]; confidence is > 0, so bin 0 starts just above 0
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, n_bins) / count
        acc = np.bincount(which, correct, n_bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf, "accuracy": acc}


def ece(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): sum over bins of |B|/n * |acc(B) - conf(B)|."""
    bins = reliability_bins(logits, labels, n_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float((bins["count"][filled] / len(labels) * gaps).sum())


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Fraction of rows where both models predict the same class."""
    return float((np.argmax(logits_a, axis=-1) == np.argmax(logits_b, axis=-1)).mean())


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int, n_bins: int = 15) -> dict:
    return {
        "accuracy": accuracy(logits, labels),
        "macro_f1": macro_f1(logits, labels, num_labels),
        "nll": nll(logits, labels),
        "ece": ece(logits, labels, n_bins),
    }
