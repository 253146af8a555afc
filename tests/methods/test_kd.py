"""kd: Hinton et al. (2015), checked against the loss written out in NumPy."""
import numpy as np
import pytest
import torch

from distillery.methods.losses import hard_terms
from distillery.methods.kd import kd_terms

from .reference import np_log_softmax


def kd_loss(s, t, y, T, alpha):
    return kd_terms(s, t, y, T, alpha).loss


def reference_kd(s, t, y, T, alpha):
    """The Hinton et al. loss written out in NumPy, float64."""
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    p_t = np.exp(np_log_softmax(t / T))
    kl_per_row = (p_t * (np_log_softmax(t / T) - np_log_softmax(s / T))).sum(axis=-1)
    kl = kl_per_row.sum() / len(y)  # batchmean
    return (1 - alpha) * ce + alpha * T * T * kl, ce, T * T * kl


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 10.0])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_kd_loss_matches_numpy(batch, T, alpha):
    s, t, y = batch
    got = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    expected, _, _ = reference_kd(s, t, y, T, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_terms_are_ce_and_scaled_kl(batch):
    s, t, y = batch
    result = kd_terms(torch.tensor(s), torch.tensor(t), torch.tensor(y), T=3.0, alpha=0.3)
    _, ce, kd = reference_kd(s, t, y, 3.0, 0.3)
    assert result.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert result.terms["kd"].item() == pytest.approx(kd, rel=1e-10)


def test_alpha_zero_is_cross_entropy_and_alpha_one_is_pure_kd(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert kd_loss(s, t, y, 4.0, 0.0).item() == pytest.approx(ce.item(), rel=1e-12)
    assert kd_loss(s, t, y, 4.0, 1.0).item() == pytest.approx(kd_terms(s, t, y, 4.0, 1.0).terms["kd"].item())
    assert hard_terms(s, None, y).loss.item() == pytest.approx(ce.item(), rel=1e-12)


def test_t_squared_scaling_and_batchmean():
    # one row, teacher certain of class 0, uniform student: KL = log(K) for any T when T -> scaled logits
    s = torch.zeros(1, 4)
    t = torch.tensor([[1000.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0])
    for T in (1.0, 2.0, 5.0):
        kd = kd_terms(s, t, y, T, 1.0).terms["kd"].item()
        assert kd == pytest.approx(T * T * np.log(4), rel=1e-6)
    # batchmean: duplicating the batch leaves the loss unchanged (a sum over rows would double it)
    s2, t2, y2 = s.repeat(2, 1), t.repeat(2, 1), y.repeat(2)
    assert kd_loss(s2, t2, y2, 2.0, 0.5).item() == pytest.approx(kd_loss(s, t, y, 2.0, 0.5).item())


def test_identical_logits_give_zero_kd_and_gradient_flows(batch):
    s, _, y = batch
    s = torch.tensor(s, requires_grad=True)
    result = kd_terms(s, s.detach().clone(), torch.tensor(y), 4.0, 1.0)
    assert result.terms["kd"].item() == pytest.approx(0.0, abs=1e-12)
    kd_loss(s, torch.zeros_like(s), torch.tensor(y), 4.0, 0.5).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
