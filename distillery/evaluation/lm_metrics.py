"""Causal language-model metrics on next-token logits: pure functions, checked against hand computations.

Per-token scores come from ``score_tokens`` (torch, on the logits' device); everything after it is NumPy.
All logarithms are natural (nats).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def score_tokens(
    student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """Per-token scores of N next-token predictions, in float64 on the logits' device.

    ``student_logits``/``teacher_logits``: (N, V); ``targets``: (N,) next-token ids in [0, V).
    ``nll``   = -log softmax(s)[target]                       (float64)
    ``correct`` = argmax s == target                            (ties: the lowest id, as torch.argmax)
    with a teacher:
    ``agree`` = argmax s == argmax t
    ``kl``    = KL(p_t ‖ p_s) = sum_v p_t,v (log p_t,v - log p_s,v)   (float64, >= 0; 0 log 0 = 0)
    The float64 log-softmax is (N, V) per model: score a long evaluation in chunks of tokens.
    """
    import torch

    if student_logits.ndim != 2 or targets.shape != student_logits.shape[:1]:
        raise ValueError(f"student logits {tuple(student_logits.shape)} must be (N, V) with targets (N,), "
                         f"got targets {tuple(targets.shape)}")
    if teacher_logits is not None and teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} differ from student logits "
                         f"{tuple(student_logits.shape)}")
    targets = targets.to(device=student_logits.device, dtype=torch.long)
    if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= student_logits.shape[1]):
        raise ValueError(f"targets must lie in [0, {student_logits.shape[1]}), got "
                         f"[{int(targets.min())}, {int(targets.max())}] (drop ignored positions first)")

    with torch.no_grad():
        log_s = torch.log_softmax(student_logits.to(torch.float64), dim=-1)
        pred = student_logits.argmax(dim=-1)
        out = {
            "nll": -log_s.gather(1, targets[:, None])[:, 0],
            "correct": pred == targets,
        }
        if teacher_logits is not None:
            log_t = torch.log_softmax(teacher_logits.to(device=student_logits.device, dtype=torch.float64), dim=-1)
            p_t = log_t.exp()
            # where p_t = 0 the term is 0 (its log is -inf: 0 * -inf would be nan)
            terms = torch.where(p_t > 0, p_t * (log_t - log_s), torch.zeros_like(p_t))
            out["agree"] = pred == teacher_logits.to(student_logits.device).argmax(dim=-1)
            out["kl"] = terms.sum(dim=-1).clamp(min=0.0)  # rounding leaves ~ -1e-16 for near-equal rows
    return {name: value.cpu().numpy() for name, value in out.items()}


def lm_metrics(scores: dict) -> dict:
    """Token-weighted metrics of ``score_tokens``' output (one model, one evaluation set).

    ``nll`` = mean over tokens of nll; ``perplexity`` = exp(nll); ``next_token_accuracy`` = mean of correct;
    when scored against a teacher ``teacher_agreement`` = mean of agree and ``kl_from_teacher`` = mean of kl;
    ``tokens`` = N.
    """
    nll = np.asarray(scores["nll"], dtype=np.float64)
    if nll.size == 0:
        raise ValueError("no tokens to score")
    mean_nll = float(nll.mean())
    out = {
        "nll": mean_nll,
        "perplexity": float(np.exp(mean_nll)),
        "next_token_accuracy": float(np.mean(scores["correct"])),
    }
    if "agree" in scores:
        out["teacher_agreement"] = float(np.mean(scores["agree"]))
    if "kl" in scores:
        out["kl_from_teacher"] = float(np.mean(scores["kl"]))
    out["tokens"] = int(nll.size)
    return out


def sequence_sums(values: np.ndarray, sequence: np.ndarray, n_sequences: int) -> np.ndarray:
    """out[j] = sum of values[i] over the tokens i with sequence[i] == j, for j < n_sequences (float64).

    With ``values`` = ones it counts the tokens of each sequence (the bootstrap's ``tokens``).
    """
    values = np.asarray(values, dtype=np.float64)
    sequence = np.asarray(sequence)
    if values.shape != sequence.shape or values.ndim != 1:
        raise ValueError(f"values {values.shape} and sequence {sequence.shape} must be the same (N,)")
    if sequence.size and (sequence.min() < 0 or sequence.max() >= n_sequences):
        raise ValueError(f"sequence indices must lie in [0, {n_sequences}), got [{sequence.min()}, {sequence.max()}]")
    return np.bincount(sequence.astype(np.intp), weights=values, minlength=n_sequences)


def paired_nll_bootstrap(
    nll_a: np.ndarray, nll_b: np.ndarray, tokens: np.ndarray, samples: int, seed: int, confidence: float = 0.95
) -> dict:
    """Percentile bootstrap interval of the token-weighted mean NLL of A minus that of B, resampling sequences.

    ``nll_a``/``nll_b``: (seeds, sequences) per-sequence NLL sums, seed s of A paired with seed s of B and
    column j the same sequence throughout; ``tokens``: (sequences,) tokens per sequence (each > 0).
    difference = sum_{s,j} (nll_a - nll_b)[s, j] / (seeds * sum_j tokens[j])
    Each resample draws sequences with replacement, one draw for A, B and every seed, and recomputes the
    ratio over the drawn sequences; seeds are pooled, so the interval is about the evaluation text and
    treats the trained seeds as fixed. ``perplexity_ratio`` = exp(difference) = ppl(A) / ppl(B) at pooled NLL.
    """
    a = np.asarray(nll_a, dtype=np.float64)
    b = np.asarray(nll_b, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or tokens.shape != a.shape[1:] or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"nll_a {a.shape} and nll_b {b.shape} must both be (seeds, sequences), non-empty, "
                         f"with tokens (sequences,), got tokens {tokens.shape}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not (tokens > 0).all():
        raise ValueError(f"every sequence needs tokens > 0; tokens {tokens.shape} has "
                         f"{int((tokens <= 0).sum())} without")
    seeds, n = a.shape
    diff = (a - b).sum(axis=0)  # (sequences,) seed-pooled NLL difference of each sequence
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // n)  # bound the (resamples, sequences) index array to a few MB
    stats = []
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n))
        stats.append(diff[idx].sum(axis=1) / (seeds * tokens[idx].sum(axis=1)))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(stats), [tail, 100 - tail])
    difference = float(diff.sum() / (seeds * tokens.sum()))
    return {"difference": difference, "ci_low": float(low), "ci_high": float(high),
            "perplexity_ratio": float(np.exp(difference))}


def gap_closure(teacher: float, kd: float, hard: float) -> float | None:
    """Fraction of the hard-label student's perplexity gap to the teacher that the KD student closes.

    (hard - kd) / (hard - teacher): 1 = matches the teacher, 0 = no better than hard labels, < 0 = worse,
    > 1 = beyond the teacher; None when the teacher is not better than the hard student (hard <= teacher: no gap
    to close, and the ratio's sign would read backwards). Not invariant to the scale: pass perplexities for a
    perplexity gap, mean NLLs for an NLL gap.
    """
    gap = hard - teacher
    return None if gap <= 0 else float((hard - kd) / gap)


def normalised(text: str) -> str:
    """A response as exact match compares it: lower case, runs of whitespace as one space, no space at the ends."""
    return " ".join(text.lower().split())


def exact_match(predictions: list[str], references: list[str]) -> np.ndarray:
    """1.0 where a prediction equals its reference once both are ``normalised``, else 0.0."""
    return np.array([normalised(p) == normalised(r) for p, r in zip(predictions, references, strict=True)],
                    np.float64)


def rouge_l(predictions: list[str], references: list[str]) -> np.ndarray:
    """ROUGE-L F1 (Lin 2004) of each prediction against its reference: the longest common subsequence of their
    words, LCS / |prediction| and LCS / |reference| combined by their harmonic mean; words as Google's
    ``rouge_score`` makes them (lower case, letters and digits, Porter-stemmed), the scorer of the GKD and MiniLLM
    papers. Two empty texts score 0."""
    from rouge_score import rouge_scorer, tokenizers

    # its default tokenizer, given (not made by the scorer, which logs "Using default tokenizer." each time)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))
    return np.array([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)],
                    np.float64)
