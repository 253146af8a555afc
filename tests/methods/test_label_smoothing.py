"""label_smoothing: Yuan et al. (2020), KD from a uniform teacher; label smoothing at T = 1; needs no teacher."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distillery.errors import DistilleryError
from distillery.methods import METHODS
from distillery.methods.label_smoothing import label_smoothing_terms

from ..conftest import make_params
from .reference import np_log_softmax
from .training import logged, same_weights, train, weights


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0])
def test_loss_matches_numpy(batch, T, alpha):
    s, _, y = batch
    k = s.shape[1]
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    uniform = (np.full_like(s, 1 / k) * (np.log(1 / k) - np_log_softmax(s / T))).sum(-1).mean()  # KL(u ‖ p)
    got = label_smoothing_terms(torch.tensor(s), torch.tensor(y), T, alpha)
    assert got.loss.item() == pytest.approx((1 - alpha) * ce + alpha * T * T * uniform, rel=1e-10)
    assert got.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert got.terms["uniform"].item() == pytest.approx(T * T * uniform, rel=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3, 1.0])
def test_at_t_one_it_is_label_smoothing_less_alpha_log_k(batch, alpha):
    s, y = torch.tensor(batch[0]), torch.tensor(batch[2])
    smoothed = F.cross_entropy(s, y, label_smoothing=alpha)
    got = label_smoothing_terms(s, y, 1.0, alpha).loss
    assert got.item() == pytest.approx(smoothed.item() - alpha * np.log(s.shape[1]), rel=1e-12)


def test_alpha_zero_is_cross_entropy_and_a_uniform_student_has_no_soft_term(batch):
    s, y = torch.tensor(batch[0]), torch.tensor(batch[2])
    assert torch.equal(label_smoothing_terms(s, y, 4.0, 0.0).loss, F.cross_entropy(s, y))
    flat = torch.full_like(s, 3.0)
    assert label_smoothing_terms(flat, y, 4.0, 1.0).terms["uniform"].item() == pytest.approx(0.0, abs=1e-12)


def test_needs_no_teacher():
    method = METHODS["label_smoothing"]
    assert method.needs == frozenset() and not method.teacher_needed
    assert method.hyperparams(make_params(kd={"method": "label_smoothing", "T": 2.0, "alpha": 0.1})["kd"]) == \
        {"T": 2.0, "alpha": 0.1}


def test_trains_end_to_end_without_teacher_or_logits(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train("label_smoothing", digits, tmp_path, "ls", kd={"T": 2.0, "alpha": 0.3}, train={"seeds": [0]})
    assert not (tmp_path / "logits").exists() and not (tmp_path / "models/teacher").exists()
    loss, ce, uniform = (logged(tmp_path, "ls", k) for k in ("loss", "ce", "uniform"))
    assert len(loss) == 4 and np.isfinite([loss, ce, uniform]).all()
    np.testing.assert_allclose(loss, 0.7 * ce + 0.3 * uniform, rtol=1e-3)


def test_alpha_zero_is_the_hard_student(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    smooth = train("label_smoothing", digits, tmp_path, "ls0", kd={"alpha": 0.0}, train={"seeds": [0]})
    hard = train(None, digits, tmp_path, "hard", train={"seeds": [0]})
    assert same_weights(weights(smooth), weights(hard))


@pytest.mark.parametrize("kd, message", [
    ({"alpha": 1.5}, r"kd.alpha = 1.5: must be in \[0, 1\]"),
    ({"T": 0}, r"kd.T = 0: must be > 0"),
])
def test_bad_params_are_refused(kd, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(kd={**kd, "method": "label_smoothing"})
