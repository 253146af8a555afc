"""gkd: the generalized Jensen–Shannon divergence of Agarwal et al. (2024), checked against it written out in NumPy,
its endpoints (kd's forward KL, reverse_kl's reverse KL), its symmetry and its bound."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs, kd_schema
from distillery.methods.gkd import gkd_terms
from distillery.methods.kd import kd_terms
from distillery.methods.losses import UNLABELLED, generalized_jsd, soft_kl
from distillery.methods.reverse_kl import reverse_kl_terms

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits
from .reference import np_log_softmax, np_softmax
from .training import logged, same_weights, train, weights


def np_kl(p, q):
    """Σ p·log(p/q) per row."""
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


def reference_jsd(s, t, T, beta):
    """JSD_β per row from eq. (1), the mixture taken in probability space (not log space), float64; the endpoints
    as TRL takes them."""
    p_s, p_t = np_softmax(s / T), np_softmax(t / T)
    if beta == 0:
        return np_kl(p_t, p_s)
    if beta == 1:
        return np_kl(p_s, p_t)
    m = beta * p_t + (1 - beta) * p_s
    return beta * np_kl(p_t, m) + (1 - beta) * np_kl(p_s, m)


def entropy(beta):
    """H(β) = −β·log β − (1−β)·log(1−β), the bound of JSD_β for 0 < β < 1."""
    return -beta * math.log(beta) - (1 - beta) * math.log(1 - beta)


def tensors(batch):
    return tuple(torch.tensor(a) for a in batch)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_gkd_loss_matches_numpy(batch, T, alpha, beta):
    s, t, y = batch
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    jsd = T * T * reference_jsd(s, t, T, beta).sum() / len(y)  # batchmean
    got = gkd_terms(*tensors(batch), T, alpha, beta)
    assert got.loss.item() == pytest.approx((1 - alpha) * ce + alpha * jsd, rel=1e-10)
    assert got.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert got.terms["jsd"].item() == pytest.approx(jsd, rel=1e-10)


def test_a_two_class_row_by_hand():
    # p_t = softmax([log 3, 0]) = [3/4, 1/4], p_s = [1/2, 1/2]; β = ½: M = ½·p_t + ½·p_s = [5/8, 3/8]
    s = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[math.log(3), 0.0]], dtype=torch.float64)
    # KL(p_t ‖ M) = ¾·log(¾ / ⅝) + ¼·log(¼ / ⅜) = ¾·log(6/5) + ¼·log(2/3) = 0.03537489056842484
    # KL(p_s ‖ M) = ½·log(½ / ⅝) + ½·log(½ / ⅜) = ½·log(4/5) + ½·log(4/3) = 0.03226926056878557
    # JSD_½ = ½·0.03537489056842484 + ½·0.03226926056878557 = 0.033822075568605205
    assert generalized_jsd(s, t, 1.0, 0.5).item() == pytest.approx(0.033822075568605205, rel=1e-12)
    result = gkd_terms(s, t, torch.tensor([0]), T=1.0, alpha=0.5, beta=0.5)
    # loss = ½·CE + ½·T²·JSD = ½·log 2 + ½·0.033822075568605205
    assert result.loss.item() == pytest.approx(0.36348462806427523, rel=1e-12)
    # at T = 2 the teacher logits [2·log 3, 0] give the same p_t, and the term is T² = 4 times the JSD
    t2 = torch.tensor([[2 * math.log(3), 0.0]], dtype=torch.float64)
    assert gkd_terms(s, t2, torch.tensor([0]), 2.0, 1.0, 0.5).terms["jsd"].item() == pytest.approx(
        4 * 0.033822075568605205, rel=1e-12)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_beta_zero_is_kd_and_beta_one_is_reverse_kl(batch, T):
    s, t, y = tensors(batch)
    forward = gkd_terms(s, t, y, T, 0.5, 0.0)
    assert forward.terms["jsd"].item() == pytest.approx(kd_terms(s, t, y, T, 0.5).terms["kd"].item(), rel=1e-12)
    assert forward.loss.item() == pytest.approx(kd_terms(s, t, y, T, 0.5).loss.item(), rel=1e-12)
    assert generalized_jsd(s, t, T, 0.0).item() == pytest.approx(soft_kl(s, t, T).item(), rel=1e-12)  # kd's / T²
    reverse = gkd_terms(s, t, y, T, 0.5, 1.0)
    assert reverse.terms["jsd"].item() == pytest.approx(reverse_kl_terms(s, t, y, T, 0.5).terms["reverse_kl"].item(),
                                                        rel=1e-12)
    assert reverse.loss.item() == pytest.approx(reverse_kl_terms(s, t, y, T, 0.5).loss.item(), rel=1e-12)
    assert forward.terms["jsd"].item() != pytest.approx(reverse.terms["jsd"].item(), rel=1e-3)


def test_the_endpoints_are_the_limits_of_the_scaled_jsd(batch):
    """JSD_β = β·KL(p_t ‖ p_s) + O(β²) as β → 0 (and the mirror image as β → 1): TRL's endpoints are these limits of
    JSD_β/β and JSD_β/(1−β), while JSD_β itself tends to 0."""
    s, t, _ = tensors(batch)
    eps = 1e-6
    assert (generalized_jsd(s, t, 2.0, eps) / eps).item() == pytest.approx(generalized_jsd(s, t, 2.0, 0.0).item(),
                                                                           rel=1e-4)
    assert (generalized_jsd(s, t, 2.0, 1 - eps) / eps).item() == pytest.approx(generalized_jsd(s, t, 2.0, 1.0).item(),
                                                                               rel=1e-4)
    assert generalized_jsd(s, t, 2.0, eps).item() < 1e-5


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_symmetric_at_one_half_and_mirrored_elsewhere(batch, T):
    s, t, _ = tensors(batch)
    assert generalized_jsd(s, t, T, 0.5).item() == pytest.approx(generalized_jsd(t, s, T, 0.5).item(), rel=1e-12)
    # swapping the two swaps their weights: JSD_β(t, s) = JSD_{1−β}(s, t) (the same mixture, the same weighted KLs)
    assert generalized_jsd(t, s, T, 0.3).item() == pytest.approx(generalized_jsd(s, t, T, 0.7).item(), rel=1e-12)
    # but not symmetric at β ≠ ½ (nearly so for close distributions: to second order both are the same quadratic
    # form): a sure teacher, p_t = [0.9, 0.05, 0.05], and a uniform student
    sure, uniform = torch.tensor([[math.log(18), 0.0, 0.0]]).double(), torch.zeros(1, 3).double()
    assert generalized_jsd(uniform, sure, 1.0, 0.3).item() != pytest.approx(
        generalized_jsd(sure, uniform, 1.0, 0.3).item(), rel=0.05)


@pytest.mark.parametrize("beta", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_bounded_by_the_entropy_of_beta_and_reaching_it_on_disjoint_rows(batch, beta):
    """M ≥ β·p_t pointwise, so log(p_t/M) ≤ −log β and KL(p_t ‖ M) ≤ −log β; likewise KL(p_s ‖ M) ≤ −log(1−β).
    Hence 0 ≤ JSD_β ≤ −β·log β − (1−β)·log(1−β) = H(β), per row and so in the batch mean, with equality where
    p_t and p_s have disjoint supports (then M = β·p_t on one, (1−β)·p_s on the other)."""
    s, t, _ = batch
    rows = reference_jsd(s, t, 1.0, beta)
    assert (rows >= 0).all() and (rows <= entropy(beta)).all()
    for T in (0.5, 1.0, 4.0):
        got = generalized_jsd(torch.tensor(s * 10), torch.tensor(t * 10), T, beta).item()
        assert 0 <= got <= entropy(beta)
    disjoint_s = torch.tensor([[0.0, -1e4, -1e4], [-1e4, 0.0, 0.0]], dtype=torch.float64)
    disjoint_t = torch.tensor([[-1e4, 0.0, 0.0], [0.0, -1e4, -1e4]], dtype=torch.float64)
    assert generalized_jsd(disjoint_s, disjoint_t, 1.0, beta).item() == pytest.approx(entropy(beta), rel=1e-12)


def test_identical_logits_give_zero(batch):
    s, _, y = tensors(batch)
    for beta in (0.0, 0.5, 1.0):
        assert gkd_terms(s, s.clone(), y, 2.0, 1.0, beta).terms["jsd"].item() == pytest.approx(0.0, abs=1e-12)


def test_masked_rows_are_left_out_of_ce_and_kept_in_the_jsd(batch):
    s, t, y = tensors(batch)
    mixed = y.clone()
    mixed[::2] = UNLABELLED
    result = gkd_terms(s, t, mixed, 2.0, 0.5, 0.5)
    assert result.terms["ce"].item() == pytest.approx(F.cross_entropy(s[1::2], y[1::2]).item(), rel=1e-12)
    assert result.terms["jsd"].item() == pytest.approx(gkd_terms(s, t, y, 2.0, 0.5, 0.5).terms["jsd"].item(),
                                                       rel=1e-12)
    only = gkd_terms(s, t, torch.full_like(y, UNLABELLED), 2.0, 0.5, 0.5)
    assert only.terms["ce"].item() == 0.0 and torch.isfinite(only.loss)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("who", ["teacher", "student"])
def test_no_mass_on_a_class_keeps_loss_and_gradient_finite(batch, beta, who):
    s, t, y = batch
    s, t = s.copy(), t.copy()
    (t if who == "teacher" else s)[:, 2] = -1e4  # ~0 mass on class 2: log p ≈ −1e4/T there
    s = torch.tensor(s, requires_grad=True)
    result = gkd_terms(s, torch.tensor(t), torch.tensor(y), 2.0, 0.5, beta)
    result.loss.backward()
    assert torch.isfinite(result.loss) and torch.isfinite(s.grad).all()


def test_float32_student_float16_teacher_is_cast():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    y = torch.arange(5)
    half = gkd_terms(s, t.half(), y, 2.0, 0.5, 0.5)
    full = gkd_terms(s, t.half().float(), y, 2.0, 0.5, 0.5)
    assert half.loss.dtype == torch.float32 and torch.equal(half.loss, full.loss)


def test_beta_is_its_own_param_and_the_method_reads_the_step_inputs(batch):
    assert kd_schema()["gkd"]["beta"].default == 0.5
    hp = METHODS["gkd"].hyperparams(make_params(kd={"method": "gkd", "T": 3.0, "alpha": 0.4})["kd"])
    assert hp == {"T": 3.0, "alpha": 0.4, "beta": 0.5}
    hp = METHODS["gkd"].hyperparams(make_params(kd={"method": "gkd", "gkd": {"beta": 0.2}})["kd"])
    assert hp["beta"] == 0.2
    s, t, y = tensors(batch)
    got = METHODS["gkd"].loss(StepInputs(student=SequenceClassifierOutput(logits=s), labels=y, teacher_logits=t), hp)
    assert torch.equal(got.loss, gkd_terms(s, t, y, hp["T"], hp["alpha"], 0.2).loss)
    assert METHODS["gkd"].terms == ("ce", "jsd") and METHODS["gkd"].needs == {"teacher_logits"}


@pytest.mark.parametrize("beta, message", [
    (1.5, r"kd.gkd.beta = 1.5: must be in \[0, 1\]"),
    (-0.1, r"kd.gkd.beta = -0.1: must be in \[0, 1\]"),
    ("half", r"kd.gkd.beta = 'half': must be of type int or float"),
])
def test_bad_beta_is_refused(beta, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(kd={"method": "gkd", "gkd": {"beta": beta}})


ONE_SEED = {"seeds": [0]}


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("gkd")
    (root / "logits").mkdir()
    fake_teacher_logits(digits, root / "logits")
    return root


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("gkd", digits, root, "gkd", kd={"T": 2.0, "alpha": 0.5, "gkd": {"beta": 0.3}}, train=ONE_SEED)
    loss, ce, jsd = (logged(root, "gkd", k) for k in ("loss", "ce", "jsd"))
    assert len(loss) == 4 and np.isfinite([loss, ce, jsd]).all()
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * jsd, rtol=1e-3)
    assert (jsd <= 4.0 * entropy(0.3)).all()  # T²·H(β)
    assert jsd[-1] < jsd[0]  # the student moves towards the teacher


def test_alpha_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    gkd = train("gkd", digits, root, "gkd0", kd={"alpha": 0.0}, train=ONE_SEED)
    hard = train(None, digits, root, "hard", train=ONE_SEED)
    assert same_weights(weights(gkd), weights(hard))
