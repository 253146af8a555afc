"""Top-k teacher logits: what a row keeps, the targets rebuilt at any temperature, and the refusals."""
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from distillery.errors import DistilleryError
from distillery.logits_top_k import check_top_k, compress, rebuild


def round_trip(z, k, T):
    kept = compress(np.asarray(z, np.float32), k)
    return rebuild(kept["index"], kept["top"], kept["rest_mean"], kept["rest_lse"], np.shape(z)[1], T)


def test_hand_computed_row():
    z = np.array([[2.0, 0.5, -1.0, 0.0]])
    kept = compress(z, 2)
    np.testing.assert_array_equal(kept["index"], [[0, 1]])
    np.testing.assert_array_equal(kept["top"], [[2.0, 0.5]])
    mu, lse = -0.5, np.log(np.exp(-1.0) + 1.0)  # the rest: classes 2 and 3, logits -1 and 0
    np.testing.assert_allclose(kept["rest_mean"], [mu])
    np.testing.assert_allclose(kept["rest_lse"], [0.3132616875182228], rtol=1e-7)
    # T = 4: r = μ + (ℓ − log 2 − μ)/4 = -0.5 + 0.1201145069582775/4
    np.testing.assert_allclose(round_trip(z, 2, 4.0), [[2.0, 0.5, -0.4699713732604306, -0.4699713732604306]],
                               rtol=1e-6)
    # T = 1: r = ℓ − log 2, so softmax is exact on the top 2 and on the rest's total
    rebuilt = softmax(round_trip(z, 2, 1.0).astype(np.float64), axis=1)
    exact = softmax(z, axis=1)
    np.testing.assert_allclose(rebuilt[:, :2], exact[:, :2], rtol=1e-6)
    np.testing.assert_allclose(rebuilt[:, 2:].sum(1), exact[:, 2:].sum(1), rtol=1e-6)
    np.testing.assert_allclose(rebuilt[0, 2], rebuilt[0, 3])
    assert lse == pytest.approx(0.3132616875182228)


def test_skewed_rest_is_clipped_to_the_mass_bound():
    """Rest {0, -10, -10, -10}: μ = -7.5, ℓ = log(1 + 3e^-10); at T = 2 the estimate μ + (ℓ − log 4 − μ)/2 =
    -4.443 would give the rest mass 4·e^(-2.22) = 0.43, below exp(ℓ/2) ≥ 1, the least any rest of that mass has:
    r is clipped to ℓ − 2·log 4."""
    z = np.array([[1.0, 0.0, -10.0, -10.0, -10.0]])
    lse = np.log(1 + 3 * np.exp(-10.0))
    np.testing.assert_allclose(round_trip(z, 1, 2.0)[0, 1:], np.full(4, lse - 2 * np.log(4)), rtol=1e-6)
    rest_mass = 4 * np.exp(round_trip(z, 1, 2.0)[0, 1] / 2)
    true_mass = np.exp(0 / 2) + 3 * np.exp(-10 / 2)
    assert abs(rest_mass - true_mass) / true_mass < 0.02  # 1.0001 vs 1.0202


def test_no_rest_class_above_the_kth_logit_at_low_temperature():
    z = np.array([[1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]])
    rebuilt = round_trip(z, 1, 0.1)
    assert rebuilt[0, 1:].max() <= 1.0 and rebuilt.argmax() == 0


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_k_c_minus_1_is_the_full_row(T):
    z = (3 * np.random.default_rng(0).normal(size=(200, 10))).astype(np.float32)
    np.testing.assert_array_equal(round_trip(z, 9, T), z)


def test_gaussian_rest_mass_is_right_at_every_temperature():
    """The log-normal estimate: 1000 rest logits ~ N(0, 1.5²), the rest's softmax mass within 2% at T = 1..20."""
    rest = 1.5 * np.random.default_rng(1).normal(size=(1, 1000))
    z = np.concatenate([[[12.0, 10.0]], rest], axis=1)
    for T in (1.0, 2.0, 4.0, 8.0, 20.0):
        r = round_trip(z, 2, T)[0, 2].astype(np.float64)
        assert 1000 * np.exp(r / T) == pytest.approx(np.exp(logsumexp(rest / T)), rel=0.02), T


@pytest.mark.parametrize("k, message", [(0, "teacher.logits_top_k = 0: must be between 1 and 9"),
                                        (10, "teacher.logits_top_k = 10: must be between 1 and 9 \\(the data has "
                                             "10 classes; null stores every logit\\)")])
def test_k_outside_1_to_c_minus_1_is_refused(k, message):
    with pytest.raises(DistilleryError, match=message):
        check_top_k(k, 10)
    check_top_k(None, 10)
    check_top_k(9, 10)
