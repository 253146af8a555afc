"""dkd: Zhao et al. (2022), checked against TCKD and NCKD written out in NumPy, and the paper's decomposition of KD."""
import numpy as np
import pytest
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distillery.errors import DistilleryError
from distillery.methods.losses import soft_kl
from distillery.methods import METHODS, StepInputs
from distillery.methods.dkd import dkd_parts, dkd_terms

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits
from .reference import np_log_softmax, np_softmax
from .training import logged, same_weights, train, weights


def np_kl(p, q):
    """Σ p·log(p/q) per row."""
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


def reference_dkd(s, t, y, T):
    """TCKD and NCKD per row, from their definitions: binary split and renormalised non-target classes."""
    rows = np.arange(len(y))
    p_s, p_t = np_softmax(s / T), np_softmax(t / T)
    b_s = np.stack([p_s[rows, y], 1 - p_s[rows, y]], axis=-1)
    b_t = np.stack([p_t[rows, y], 1 - p_t[rows, y]], axis=-1)
    keep = np.ones_like(p_s, dtype=bool)
    keep[rows, y] = False
    n_s, n_t = p_s[keep].reshape(len(y), -1), p_t[keep].reshape(len(y), -1)
    n_s, n_t = n_s / n_s.sum(-1, keepdims=True), n_t / n_t.sum(-1, keepdims=True)
    return np_kl(b_t, b_s), np_kl(n_t, n_s)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha, beta, warmup", [(1.0, 8.0, 1.0), (0.5, 2.0, 1.0), (1.0, 8.0, 0.25), (0.0, 1.0, 1.0)])
def test_dkd_loss_matches_numpy(batch, T, alpha, beta, warmup):
    s, t, y = batch
    tckd, nckd = reference_dkd(s, t, y, T)
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    expected = ce + warmup * (alpha * T * T * tckd.mean() + beta * T * T * nckd.mean())
    got = dkd_terms(*(torch.tensor(a) for a in batch), T, alpha, beta, warmup)
    assert got.loss.item() == pytest.approx(expected, rel=1e-10)
    assert got.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert got.terms["tckd"].item() == pytest.approx(T * T * tckd.mean(), rel=1e-10)
    assert got.terms["nckd"].item() == pytest.approx(T * T * nckd.mean(), rel=1e-10)


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_kd_is_tckd_plus_weighted_nckd(batch, T):
    """The paper's Eq. (5), per example: KL(p_t ‖ p_s) = TCKD + (1 − p_t[y])·NCKD."""
    s, t, y = (torch.tensor(a) for a in batch)
    for i in range(len(y)):
        row = slice(i, i + 1)
        tckd, nckd = dkd_parts(s[row], t[row], y[row], T)
        p_target = torch.softmax(t[i] / T, dim=-1)[y[i]]
        kl = soft_kl(s[row], t[row], T)
        assert kl.item() == pytest.approx((tckd + (1 - p_target) * nckd).item(), rel=1e-10)


def test_identical_logits_give_zero_tckd_and_nckd(batch):
    s, _, y = (torch.tensor(a) for a in batch)
    result = dkd_terms(s, s.clone(), y, 4.0, 1.0, 8.0)
    assert result.terms["tckd"].item() == pytest.approx(0.0, abs=1e-12)
    assert result.terms["nckd"].item() == pytest.approx(0.0, abs=1e-12)
    assert result.loss.item() == pytest.approx(result.terms["ce"].item(), rel=1e-12)


def test_alpha_beta_zero_is_cross_entropy(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    assert torch.equal(dkd_terms(s, t, y, 4.0, 0.0, 0.0).loss, torch.nn.functional.cross_entropy(s, y))


def test_two_classes_have_no_non_target_term_and_tckd_is_kd():
    s, t, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64), torch.tensor([0, 1] * 3)
    tckd, nckd = dkd_parts(s, t, y, 2.0)
    assert nckd.item() == 0.0
    assert tckd.item() == pytest.approx(soft_kl(s, t, 2.0).item(), rel=1e-12)


def test_confident_logits_stay_finite_and_gradient_flows(batch):
    s, t, y = batch
    s = torch.tensor(s * 300, requires_grad=True)
    result = dkd_terms(s, torch.tensor(t * 300), torch.tensor(y), 1.0, 1.0, 8.0)
    result.loss.backward()
    assert torch.isfinite(result.loss) and torch.isfinite(s.grad).all()


def test_the_warm_up_scales_the_distillation_terms(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    hp = METHODS["dkd"].hyperparams(make_params(kd={"method": "dkd", "T": 2.0, "dkd": {"warmup_steps": 20}})["kd"])
    assert hp == {"T": 2.0, "alpha": 1.0, "beta": 8.0, "warmup_steps": 20}  # kd.alpha is not read
    full = dkd_terms(s, t, y, 2.0, 1.0, 8.0)
    distill = 1.0 * full.terms["tckd"] + 8.0 * full.terms["nckd"]
    for step, weight in [(0, 0.0), (5, 0.25), (20, 1.0), (35, 1.0)]:
        inputs = StepInputs(student=SequenceClassifierOutput(logits=s), labels=y, teacher_logits=t, step=step)
        got = METHODS["dkd"].loss(inputs, hp).loss
        assert got.item() == pytest.approx((full.terms["ce"] + weight * distill).item(), rel=1e-12)


ONE_SEED = {"seeds": [0]}


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("dkd")
    (root / "logits").mkdir()
    fake_teacher_logits(digits, root / "logits")
    return root


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("dkd", digits, root, "dkd", kd={"dkd": {"alpha": 1.0, "beta": 2.0, "warmup_steps": 20}}, train=ONE_SEED)
    loss, ce, tckd, nckd = (logged(root, "dkd", k) for k in ("loss", "ce", "tckd", "nckd"))
    assert len(loss) == 4 and np.isfinite([loss, ce, tckd, nckd]).all()
    np.testing.assert_allclose(loss[2:], ce[2:] + tckd[2:] + 2.0 * nckd[2:], rtol=1e-3)  # steps 20-39: full weight
    assert (loss[:2] < ce[:2] + tckd[:2] + 2.0 * nckd[:2]).all()  # steps 0-19: warming up
    assert (loss[:2] > ce[:2]).all()


def test_alpha_and_beta_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    dkd = train("dkd", digits, root, "dkd0", kd={"dkd": {"alpha": 0.0, "beta": 0.0}}, train=ONE_SEED)
    hard = train(None, digits, root, "hard", train=ONE_SEED)
    assert same_weights(weights(dkd), weights(hard))


@pytest.mark.parametrize("groups, message", [
    ({"kd": {"dkd": {"beta": -1}}}, r"kd.dkd.beta = -1: must be >= 0"),
    ({"kd": {"dkd": {"alpha": -0.5}}}, r"kd.dkd.alpha = -0.5: must be >= 0"),
    ({"kd": {"dkd": {"warmup_steps": -1}}}, r"kd.dkd.warmup_steps = -1: must be >= 0"),
    ({"kd": {"dkd": {"warmup_steps": 2.5}}}, r"kd.dkd.warmup_steps = 2.5: must be of type int"),
    ({"kd": {"dkd": {"warmup_steps": 41}}},
     r"kd.method = 'dkd': kd.dkd.warmup_steps = 41 is longer than train.max_steps = 40"),
])
def test_bad_params_are_refused(groups, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(**{**groups, "kd": {**groups["kd"], "method": "dkd"}})
    make_params(kd={"method": "dkd", "dkd": {"warmup_steps": 40}})
