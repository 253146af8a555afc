"""dist: Huang et al. (2022), its Pearson relations checked against NumPy, and the invariance DIST is built on."""
import numpy as np
import pytest
import torch

from distillery.errors import DistilleryError
from distillery.methods import METHODS
from distillery.methods.dist import dist_terms, relations

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits
from .reference import np_log_softmax, np_softmax
from .training import logged, same_weights, train, weights


def np_relations(p_s, p_t):
    """1 − mean Pearson correlation of the rows, and of the columns (np.corrcoef)."""
    def mean_corr(a, b):
        return np.mean([np.corrcoef(a[i], b[i])[0, 1] for i in range(len(a))])

    return 1 - mean_corr(p_s, p_t), 1 - mean_corr(p_s.T, p_t.T)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("beta, gamma", [(1.0, 1.0), (2.0, 0.5), (0.0, 3.0)])
def test_dist_loss_matches_numpy(batch, T, beta, gamma):
    s, t, y = batch
    inter, intra = np_relations(np_softmax(s / T), np_softmax(t / T))
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    got = dist_terms(*(torch.tensor(a) for a in batch), T, beta, gamma)
    assert got.loss.item() == pytest.approx(ce + beta * T * T * inter + gamma * T * T * intra, rel=1e-10)
    assert got.terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert got.terms["inter"].item() == pytest.approx(T * T * inter, rel=1e-10)
    assert got.terms["intra"].item() == pytest.approx(T * T * intra, rel=1e-10)


def test_identical_outputs_give_zero_relations(batch):
    s, _, y = (torch.tensor(a) for a in batch)
    result = dist_terms(s, s.clone(), y, 4.0, 1.0, 1.0)
    assert result.terms["inter"].item() == pytest.approx(0.0, abs=1e-12)
    assert result.terms["intra"].item() == pytest.approx(0.0, abs=1e-12)
    assert result.loss.item() == pytest.approx(result.terms["ce"].item(), rel=1e-12)


def test_relations_ignore_a_positive_affine_map_of_the_teacher(batch):
    """DIST's relaxed match: scaling and shifting the teacher's predictions of an example (a row; of a class
    for the intra-class relation: a column) by a > 0 and b changes nothing; a < 0 flips the correlation."""
    s, t, _ = batch
    p_s, p_t = torch.softmax(torch.tensor(s), -1), torch.softmax(torch.tensor(t), -1)
    inter, intra = relations(p_s, p_t)
    rng = np.random.default_rng(1)
    a_rows, b_rows = torch.tensor(rng.uniform(0.1, 5, size=(len(s), 1))), torch.tensor(rng.normal(size=(len(s), 1)))
    assert relations(p_s, a_rows * p_t + b_rows)[0].item() == pytest.approx(inter.item(), rel=1e-12)
    a_cols, b_cols = torch.tensor(rng.uniform(0.1, 5, size=s.shape[1])), torch.tensor(rng.normal(size=s.shape[1]))
    assert relations(p_s, a_cols * p_t + b_cols)[1].item() == pytest.approx(intra.item(), rel=1e-12)
    assert relations(p_s, -p_t)[0].item() == pytest.approx(2 - inter.item(), rel=1e-12)


def test_beta_gamma_zero_is_cross_entropy(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    assert torch.equal(dist_terms(s, t, y, 4.0, 0.0, 0.0).loss, torch.nn.functional.cross_entropy(s, y))


def test_a_batch_of_one_stays_finite():
    """Each class then has one prediction, with no variance: uncorrelated, so the intra-class relation is 1."""
    s = torch.randn(1, 5, dtype=torch.float64, requires_grad=True)
    result = dist_terms(s, torch.randn(1, 5, dtype=torch.float64), torch.tensor([2]), 2.0, 1.0, 1.0)
    result.loss.backward()
    assert result.terms["intra"].item() == pytest.approx(4.0)
    assert torch.isfinite(s.grad).all()


def test_with_two_classes_a_row_correlates_by_its_leading_class_only():
    p_s = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    p_t = torch.tensor([[0.55, 0.45], [0.2, 0.8], [0.01, 0.99]], dtype=torch.float64)
    assert relations(p_s, p_t)[0].item() == pytest.approx(1 - (1 - 1 + 1) / 3, rel=1e-12)  # same, opposite, same leader


def test_kd_alpha_is_not_read():
    hp = METHODS["dist"].hyperparams(make_params(kd={"method": "dist", "alpha": 0.2, "T": 1.0})["kd"])
    assert hp == {"T": 1.0, "beta": 1.0, "gamma": 1.0}


ONE_SEED = {"seeds": [0]}


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    (root / "logits").mkdir()
    fake_teacher_logits(digits, root / "logits")
    return root


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("dist", digits, root, "dist", kd={"T": 2.0, "dist": {"gamma": 2.0}}, train=ONE_SEED)
    loss, ce, inter, intra = (logged(root, "dist", k) for k in ("loss", "ce", "inter", "intra"))
    assert len(loss) == 4 and np.isfinite([loss, ce, inter, intra]).all()
    np.testing.assert_allclose(loss, ce + inter + 2.0 * intra, rtol=1e-3)
    assert (inter[-1] < inter[0]) and (intra[-1] < intra[0])  # the student learns the teacher's relations


def test_beta_and_gamma_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    dist = train("dist", digits, root, "dist0", kd={"dist": {"beta": 0.0, "gamma": 0.0}}, train=ONE_SEED)
    hard = train(None, digits, root, "hard", train=ONE_SEED)
    assert same_weights(weights(dist), weights(hard))


@pytest.mark.parametrize("groups, message", [
    ({"kd": {"dist": {"beta": -1}}}, r"kd.dist.beta = -1: must be >= 0"),
    ({"kd": {"dist": {"gamma": -0.5}}}, r"kd.dist.gamma = -0.5: must be >= 0"),
    ({"train": {"batch_size": 1}},
     r"kd.method = 'dist': train.batch_size = 1: the intra-class relation correlates each class across a batch"),
])
def test_bad_params_are_refused(groups, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(**{**groups, "kd": {**groups.get("kd", {}), "method": "dist"}})
