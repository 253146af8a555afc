"""Classification metrics on logits: pure NumPy/SciPy functions, checked against hand computations."""
from __future__ import annotations

import math

import numpy as np
from scipy.special import log_softmax, softmax


def probabilities(logits: np.ndarray) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64), axis=-1)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(logits, axis=-1) == labels).mean())


def macro_f1(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> float:
    """Unweighted mean of F1 = 2·TP / (2·TP + FP + FN) = 2·TP / (predicted + true) over the classes present in
    ``labels`` or predicted: a class with no row and no prediction has no F1 and is left out, as ROC AUC leaves it
    out (scikit-learn's ``f1_score(average="macro", zero_division=0)``, without its 0.5 s import in every stage
    that scores)."""
    preds = np.argmax(logits, axis=-1)
    labels = np.asarray(labels)
    true_positive = np.bincount(labels[preds == labels], minlength=num_labels)
    counted = np.bincount(preds, minlength=num_labels) + np.bincount(labels, minlength=num_labels)
    present = counted > 0
    return float((2.0 * true_positive[present] / counted[present]).mean())


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (natural log)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def brier(logits: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of sum_k (p_k - [y = k])², in [0, 2]."""
    probs = probabilities(logits)
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def _bin_stats(confidence: np.ndarray, hit: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    """Equal-width bins ``(lo, hi]`` of ``confidence``: count, mean confidence and mean ``hit`` per bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds edges[b] < confidence <= edges[b+1]; confidence 0 goes to bin 0
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, n_bins) / count
        acc = np.bincount(which, hit.astype(np.float64), n_bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf, "accuracy": acc}


def _calibration_gap(bins: dict[str, np.ndarray]) -> float:
    """sum over filled bins of |B|/n * |accuracy(B) - confidence(B)|."""
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float((bins["count"][filled] / bins["count"].sum() * gaps).sum())


def reliability_bins(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label confidence in ``n_bins`` equal-width bins ``(lo, hi]``: count, mean confidence, accuracy."""
    probs = probabilities(logits)
    return _bin_stats(probs.max(axis=-1), probs.argmax(axis=-1) == labels, n_bins)


def ece(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): sum over bins of |B|/n * |acc(B) - conf(B)|."""
    return _calibration_gap(reliability_bins(logits, labels, n_bins))


def classwise_ece(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al. 2019): for each class k, bin p_k over all rows and compare it with the
    frequency of label k in the bin; the mean over classes of these per-class calibration errors."""
    probs = probabilities(logits)
    per_class = [_calibration_gap(_bin_stats(probs[:, k], labels == k, n_bins)) for k in range(probs.shape[1])]
    return float(np.mean(per_class))


def scale_logits(logits: np.ndarray, temperature: float) -> np.ndarray:
    return np.asarray(logits, dtype=np.float64) / temperature


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of ``logits / T``.

    Fitted on validation logits; searched over log T in [log 0.01, log 100] with bounded Brent.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    result = minimize_scalar(
        lambda log_t: nll(logits / math.exp(log_t), labels),
        bounds=(math.log(0.01), math.log(100.0)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def kl_divergence(teacher_logits: np.ndarray, student_logits: np.ndarray) -> float:
    """Mean over rows of KL(p_teacher ‖ p_student) at temperature 1 (nats)."""
    log_t = log_softmax(np.asarray(teacher_logits, dtype=np.float64), axis=-1)
    log_s = log_softmax(np.asarray(student_logits, dtype=np.float64), axis=-1)
    return float((np.exp(log_t) * (log_t - log_s)).sum(axis=1).mean())


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Fraction of rows where both models predict the same class."""
    return float((np.argmax(logits_a, axis=-1) == np.argmax(logits_b, axis=-1)).mean())


def accuracy_where_teacher(student_logits: np.ndarray, teacher_logits: np.ndarray, labels: np.ndarray) -> dict:
    """The student's accuracy on the rows the teacher gets right and on those it gets wrong (None if no row)."""
    teacher_right = np.argmax(teacher_logits, axis=-1) == labels
    student_right = np.argmax(student_logits, axis=-1) == labels
    return {
        "accuracy_teacher_right": float(student_right[teacher_right].mean()) if teacher_right.any() else None,
        "accuracy_teacher_wrong": float(student_right[~teacher_right].mean()) if (~teacher_right).any() else None,
    }


def roc_points(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of ``scores`` for the booleans ``positive`` (both classes present): false and true positive
    rates with the threshold at each distinct score, highest first, from (0, 0) to (1, 1) (scikit-learn's
    ``roc_curve`` with ``drop_intermediate=False``)."""
    order = np.argsort(scores, kind="stable")[::-1]
    ordered, hits = np.asarray(scores)[order], np.asarray(positive, bool)[order]
    ends = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]  # the last row of each distinct score
    true_positives = np.cumsum(hits)[ends]
    false_positives = ends + 1 - true_positives
    return np.r_[0, false_positives] / false_positives[-1], np.r_[0, true_positives] / true_positives[-1]


def roc_auc_per_class(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC of each class, the trapezoidal area under ``roc_points`` (a tie counts half, as in
    scikit-learn's ``roc_auc_score``); NaN for a class that is absent, or alone, in ``labels``."""
    probs = probabilities(logits)
    out = np.full(probs.shape[1], np.nan)
    for k in range(probs.shape[1]):
        positive = labels == k
        if 0 < positive.sum() < len(labels):
            out[k] = np.trapezoid(*roc_points(positive, probs[:, k])[::-1])
    return out


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact (binomial) two-sided McNemar test on paired right/wrong outcomes of two models.

    ``a_only``: rows only A gets right; ``b_only``: rows only B gets right. Under H0 (equal accuracy)
    a_only ~ Binomial(a_only + b_only, 1/2). No discordant rows gives p = 1.
    """
    from scipy.stats import binomtest

    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(min(p, 1.0))}


def paired_bootstrap_ci(
    correct_a: np.ndarray, correct_b: np.ndarray, samples: int, seed: int, confidence: float = 0.95
) -> dict:
    """Percentile bootstrap interval of accuracy(A) - accuracy(B), resampling test rows (paired).

    ``correct_a``/``correct_b``: (seeds, rows) booleans, column i the same test row for every seed; each
    resample draws rows with replacement and pools the seeds, so the interval is about the test set and
    treats the trained seeds as fixed.
    """
    diff = (np.asarray(correct_a, np.float64) - np.asarray(correct_b, np.float64)).mean(axis=0)
    rng = np.random.default_rng(seed)
    n = len(diff)
    chunk = max(1, 4_000_000 // n)  # bound the (resamples, rows) index array to a few MB
    means = np.concatenate([
        diff[rng.integers(0, n, size=(min(chunk, samples - start), n))].mean(axis=1)
        for start in range(0, samples, chunk)
    ])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"difference": float(diff.mean()), "ci_low": float(low), "ci_high": float(high)}


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int, n_bins: int = 15) -> dict:
    return {
        "accuracy": accuracy(logits, labels),
        "errors": int((np.asarray(logits).argmax(-1) != np.asarray(labels)).sum()),
        "macro_f1": macro_f1(logits, labels, num_labels),
        "nll": nll(logits, labels),
        "ece": ece(logits, labels, n_bins),
        "classwise_ece": classwise_ece(logits, labels, n_bins),
        "brier": brier(logits, labels),
    }


def calibration_after_scaling(
    val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray, n_bins: int = 15
) -> dict:
    """Fit T on validation, then the test ECE and NLL of ``test_logits / T``."""
    temperature = fit_temperature(val_logits, val_labels)
    scaled = scale_logits(test_logits, temperature)
    return {
        "temperature": temperature,
        "ece_scaled": ece(scaled, test_labels, n_bins),
        "nll_scaled": nll(scaled, test_labels),
    }
