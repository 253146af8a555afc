"""logit_std: KD on Z-scored logits, by hand; its invariances; alpha = 0 is the hard student."""
import numpy as np
import pytest
import torch

from distillery.methods.logit_std import logit_std_terms, standardize

from .reference import np_log_softmax
from .training import logged, same_weights, setup_teacher, train, weights


def np_standardize(z):
    return (z - z.mean(-1, keepdims=True)) / (z.std(-1, ddof=1, keepdims=True) + 1e-7)


@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (2.0, 0.9), (4.0, 0.1)])
def test_matches_numpy(batch, T, alpha):
    s, t, y = batch
    zs, zt = np_standardize(s) / T, np_standardize(t) / T
    kl = (np.exp(np_log_softmax(zt)) * (np_log_softmax(zt) - np_log_softmax(zs))).sum() / len(y)
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    got = logit_std_terms(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert got.terms["kd"].item() == pytest.approx(T * T * kl, rel=1e-9)
    assert got.loss.item() == pytest.approx((1 - alpha) * ce + alpha * T * T * kl, rel=1e-9)


def test_unlabelled_transfer_rows_count_in_the_kd_term_only(batch):
    from distillery.methods.losses import UNLABELLED

    s, t, y = (torch.tensor(a) for a in batch)
    masked = y.clone()
    masked[3:] = UNLABELLED
    got = logit_std_terms(s, t, masked, 2.0, 0.5)
    assert got.terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(s[:3], y[:3]).item())
    assert got.terms["kd"].item() == logit_std_terms(s, t, y, 2.0, 0.5).terms["kd"].item()
    none = logit_std_terms(s, t, torch.full_like(y, UNLABELLED), 2.0, 0.5)
    assert none.terms["ce"].item() == 0.0 and torch.isfinite(none.loss)


def test_standardized_rows_have_mean_zero_and_unit_std(batch):
    z = standardize(torch.tensor(batch[0]))
    np.testing.assert_allclose(z.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(-1), 1, rtol=1e-6)


def test_a_teachers_scale_and_shift_per_row_do_not_change_the_loss(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    scale, shift = torch.rand(len(y), 1) * 5 + 0.1, torch.randn(len(y), 1) * 10
    base = logit_std_terms(s, t, y, 2.0, 0.5).loss.item()
    assert logit_std_terms(s, t * scale + shift, y, 2.0, 0.5).loss.item() == pytest.approx(base, rel=1e-6)
    # and a student that is the teacher up to scale and shift has nothing left to learn from it
    assert logit_std_terms(t * 3 + 1, t, y, 2.0, 1.0).terms["kd"].item() == pytest.approx(0.0, abs=1e-10)


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    return setup_teacher(digits, tmp_path_factory.mktemp("logit_std"))


def test_trains_and_alpha_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("logit_std", digits, root, "ls")
    loss, ce, kd = (logged(root, "ls", k) for k in ("loss", "ce", "kd"))
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * kd, rtol=1e-3)
    zero = train("logit_std", digits, root, "ls0", kd={"alpha": 0.0})
    assert same_weights(weights(zero), weights(train(None, digits, root, "hard")))
