"""reverse_kl: the per-token reverse KL of MiniLLM (Gu et al. 2024), checked against the loss written out in NumPy."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from distillery.methods import METHODS, StepInputs
from distillery.methods.kd import kd_terms
from distillery.methods.losses import UNLABELLED
from distillery.methods.reverse_kl import reverse_kl_terms

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits
from .reference import np_log_softmax
from .training import logged, same_weights, train, weights


def reference_reverse_kl(s, t, y, T, alpha):
    """(1-α)·CE + α·T²·KL(p_s ‖ p_t) written out in NumPy, float64: the student's distribution weighs the log ratio."""
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    log_p_s, log_p_t = np_log_softmax(s / T), np_log_softmax(t / T)
    kl_per_row = (np.exp(log_p_s) * (log_p_s - log_p_t)).sum(axis=-1)
    kl = kl_per_row.sum() / len(y)  # batchmean
    return (1 - alpha) * ce + alpha * T * T * kl, ce, T * T * kl


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 10.0])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_reverse_kl_loss_matches_numpy(batch, T, alpha):
    s, t, y = batch
    got = reverse_kl_terms(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    expected, ce, term = reference_reverse_kl(s, t, y, T, alpha)
    assert got.loss.item() == pytest.approx(expected, rel=1e-10)
    assert got.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert got.terms["reverse_kl"].item() == pytest.approx(term, rel=1e-10)


def test_a_two_class_row_by_hand():
    # student uniform, p_s = [1/2, 1/2]; teacher logits [2·log 3, 0] at T = 2: p_t = softmax([log 3, 0]) = [3/4, 1/4]
    s = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[2 * math.log(3), 0.0]], dtype=torch.float64)
    result = reverse_kl_terms(s, t, torch.tensor([0]), T=2.0, alpha=0.25)
    # KL(p_s ‖ p_t) = ½·log(½ / ¾) + ½·log(½ / ¼) = ½·log(4/3) = 0.14384103622589042; × T² = 4 → 0.5753641449035617
    assert result.terms["reverse_kl"].item() == pytest.approx(0.5753641449035617, rel=1e-12)
    # CE = −log ½ = 0.6931471805599453; loss = 0.75 · 0.6931471805599453 + 0.25 · 0.5753641449035617
    assert result.terms["ce"].item() == pytest.approx(0.6931471805599453, rel=1e-12)
    assert result.loss.item() == pytest.approx(0.6637014216458493, rel=1e-12)
    # the forward KL (kd's) of the same row differs: ¾·log(3/2) + ¼·log(½) = 0.13081203594113697, × 4
    assert kd_terms(s, t, torch.tensor([0]), 2.0, 1.0).terms["kd"].item() == pytest.approx(4 * 0.13081203594113697)


def test_it_is_kd_with_student_and_teacher_swapped(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    for T in (1.0, 3.0):
        reverse = reverse_kl_terms(s, t, y, T, 1.0).terms["reverse_kl"]
        assert reverse.item() == pytest.approx(kd_terms(t, s, y, T, 1.0).terms["kd"].item(), rel=1e-12)
        assert reverse.item() != pytest.approx(kd_terms(s, t, y, T, 1.0).terms["kd"].item(), rel=1e-3)


def test_t_squared_scaling_and_batchmean(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    one = reverse_kl_terms(s, t, y, 2.0, 0.5)
    two = reverse_kl_terms(s.repeat(2, 1), t.repeat(2, 1), y.repeat(2), 2.0, 0.5)
    assert two.loss.item() == pytest.approx(one.loss.item(), rel=1e-12)  # a sum over rows would double it
    # a uniform student and a teacher sure of class 0 over K = 4 classes: KL(p_s ‖ p_t) = Σ_j ¼·log(¼ / p_t[j]) grows
    # without bound as p_t → 0 on three classes, so take a finite gap g at every T: teacher logits [g·T, 0, 0, 0]
    # give p_t = [e^g, 1, 1, 1] / (e^g + 3), and KL = log ¼ + log(e^g + 3) − g/4 whatever T; the term is T² times it
    g = 3.0
    kl = math.log(0.25) + math.log(math.exp(g) + 3) - g / 4
    for T in (1.0, 2.0, 5.0):
        got = reverse_kl_terms(torch.zeros(1, 4, dtype=torch.float64), torch.tensor([[g * T, 0.0, 0.0, 0.0]]).double(),
                               torch.tensor([0]), T, 1.0).terms["reverse_kl"].item()
        assert got == pytest.approx(T * T * kl, rel=1e-12)


def test_identical_logits_give_zero(batch):
    s, _, y = (torch.tensor(a) for a in batch)
    result = reverse_kl_terms(s, s.clone(), y, 4.0, 1.0)
    assert result.terms["reverse_kl"].item() == pytest.approx(0.0, abs=1e-12)


def test_masked_rows_are_left_out_of_ce_and_kept_in_the_kl(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    mixed = y.clone()
    mixed[::2] = UNLABELLED
    result = reverse_kl_terms(s, t, mixed, 2.0, 0.5)
    assert result.terms["ce"].item() == pytest.approx(F.cross_entropy(s[1::2], y[1::2]).item(), rel=1e-12)
    assert result.terms["reverse_kl"].item() == pytest.approx(reverse_kl_terms(s, t, y, 2.0, 0.5).terms["reverse_kl"]
                                                             .item(), rel=1e-12)
    _, ce, _ = reference_reverse_kl(s[1::2].numpy(), t[1::2].numpy(), y[1::2].numpy(), 2.0, 0.5)
    assert result.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    only = reverse_kl_terms(s, t, torch.full_like(y, UNLABELLED), 2.0, 0.5)
    assert only.terms["ce"].item() == 0.0 and torch.isfinite(only.loss)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_a_teacher_with_no_mass_on_a_class_keeps_loss_and_gradient_finite(batch, T):
    s, t, y = batch
    t = t.copy()
    t[:, 2] = -1e4  # the teacher puts ~0 mass on class 2: log p_t ≈ −1e4/T there
    s = torch.tensor(s, requires_grad=True)
    result = reverse_kl_terms(s, torch.tensor(t), torch.tensor(y), T, 0.5)
    result.loss.backward()
    assert torch.isfinite(result.loss) and torch.isfinite(s.grad).all()
    assert result.terms["reverse_kl"].item() > 100  # mode-seeking: the student's mass on class 2 is paid for dearly
    assert (s.grad[:, 2] > 0).all()  # and the gradient pushes it off that class


def test_float32_student_float16_teacher_is_cast():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    y = torch.arange(5)
    half = reverse_kl_terms(s, t.half(), y, 2.0, 0.5)
    full = reverse_kl_terms(s, t.half().float(), y, 2.0, 0.5)
    assert half.loss.dtype == torch.float32 and torch.equal(half.loss, full.loss)


def test_the_method_reads_the_step_inputs(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    hp = METHODS["reverse_kl"].hyperparams(make_params(kd={"method": "reverse_kl", "T": 3.0, "alpha": 0.4})["kd"])
    assert hp == {"T": 3.0, "alpha": 0.4}
    got = METHODS["reverse_kl"].loss(StepInputs(student=SequenceClassifierOutput(logits=s), labels=y,
                                                teacher_logits=t), hp)
    assert torch.equal(got.loss, reverse_kl_terms(s, t, y, 3.0, 0.4).loss)
    assert METHODS["reverse_kl"].terms == ("ce", "reverse_kl") and METHODS["reverse_kl"].needs == {"teacher_logits"}


ONE_SEED = {"seeds": [0]}


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("reverse_kl")
    (root / "logits").mkdir()
    fake_teacher_logits(digits, root / "logits")
    return root


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("reverse_kl", digits, root, "rkl", kd={"T": 2.0, "alpha": 0.5}, train=ONE_SEED)
    loss, ce, term = (logged(root, "rkl", k) for k in ("loss", "ce", "reverse_kl"))
    assert len(loss) == 4 and np.isfinite([loss, ce, term]).all()
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * term, rtol=1e-3)
    assert term[-1] < term[0]  # the student moves towards the teacher


def test_alpha_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    rkl = train("reverse_kl", digits, root, "rkl0", kd={"alpha": 0.0}, train=ONE_SEED)
    hard = train(None, digits, root, "hard", train=ONE_SEED)
    assert same_weights(weights(rkl), weights(hard))
