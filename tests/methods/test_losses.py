"""Loss primitives: cross-entropy on labels and the temperature-softened KL."""
import numpy as np
import pytest
import torch

from distillery.methods.losses import hard_terms, soft_kl

from .reference import np_log_softmax


def test_hard_terms_is_cross_entropy():
    rng = np.random.default_rng(1)
    s, y = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    expected = -np_log_softmax(s)[np.arange(6), y].mean()
    result = hard_terms(torch.tensor(s), None, torch.tensor(y))
    assert result.loss.item() == pytest.approx(expected, rel=1e-12)
    assert result.terms == {"ce": result.loss}


def test_soft_kl_is_batchmean_kl_of_softened_distributions():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    T = 2.5
    p = np.exp(np_log_softmax(t / T))
    expected = (p * (np_log_softmax(t / T) - np_log_softmax(s / T))).sum() / 5
    assert soft_kl(torch.tensor(s), torch.tensor(t), T).item() == pytest.approx(expected, rel=1e-10)
    assert soft_kl(torch.tensor(s), torch.tensor(s), T).item() == pytest.approx(0.0, abs=1e-12)
