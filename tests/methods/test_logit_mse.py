"""logit_mse: the logit distance by hand; Hinton's high-temperature limit of KD; alpha = 0 is the hard student."""
import numpy as np
import pytest
import torch

from distillery.methods.logit_mse import logit_mse, logit_mse_terms
from distillery.methods.losses import UNLABELLED, soft_kl

from .reference import np_log_softmax
from .training import logged, same_weights, setup_teacher, train, weights


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 1.0])
def test_matches_numpy(batch, alpha):
    s, t, y = batch
    mse = ((s - t) ** 2).sum() / s.size
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    got = logit_mse_terms(torch.tensor(s), torch.tensor(t), torch.tensor(y), alpha)
    assert got.terms["mse"].item() == pytest.approx(mse, rel=1e-12)
    assert got.terms["ce"].item() == pytest.approx(ce, rel=1e-12)
    assert got.loss.item() == pytest.approx((1 - alpha) * ce + alpha * mse, rel=1e-12)


def test_a_hand_computed_value():
    # rows (1, 2) vs (0, 0) and (0, 0) vs (3, 1): squared differences 1, 4, 9, 1 -> mean 15 / 4
    got = logit_mse(torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 1.0]]))
    assert got.item() == 3.75


def test_is_twice_the_high_temperature_limit_of_hintons_term(batch):
    """Hinton et al. (2015, §2.1): T²·KL -> ½·mean_c (s − t)² per row as T grows, for rows of mean 0."""
    s, t, _ = (torch.tensor(a) for a in batch)
    s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    T = 1e3
    assert (2 * T * T * soft_kl(s, t, T)).item() == pytest.approx(logit_mse(s, t).item(), rel=1e-3)


def test_counts_a_shift_of_a_row_which_kd_does_not(batch):
    s, t, _ = (torch.tensor(a) for a in batch)
    assert soft_kl(s + 5.0, t, 2.0).item() == pytest.approx(soft_kl(s, t, 2.0).item(), rel=1e-9)
    assert logit_mse(s + 5.0, t).item() > logit_mse(s, t).item() + 1.0
    assert logit_mse(t.clone(), t).item() == 0.0


def test_unlabelled_transfer_rows_count_in_the_distance_only(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    masked = y.clone()
    masked[3:] = UNLABELLED
    got = logit_mse_terms(s, t, masked, 0.5)
    assert got.terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(s[:3], y[:3]).item())
    assert got.terms["mse"].item() == logit_mse_terms(s, t, y, 0.5).terms["mse"].item()


def test_a_teacher_in_another_dtype_is_cast_to_the_students():
    s = torch.randn(4, 3, dtype=torch.float32, requires_grad=True)
    got = logit_mse(s, torch.randn(4, 3, dtype=torch.float64))
    got.backward()
    assert got.dtype == torch.float32 and s.grad.dtype == torch.float32


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    return setup_teacher(digits, tmp_path_factory.mktemp("logit_mse"))


def test_trains_and_alpha_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("logit_mse", digits, root, "mse")
    loss, ce, mse = (logged(root, "mse", k) for k in ("loss", "ce", "mse"))
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * mse, rtol=1e-3)
    assert mse[-1] < mse[0]
    zero = train("logit_mse", digits, root, "mse0", kd={"alpha": 0.0})
    assert same_weights(weights(zero), weights(train(None, digits, root, "hard")))
