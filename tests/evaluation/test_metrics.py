import numpy as np
import pytest

from distillery.evaluation import metrics as M


def logits_for(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


def test_ece_by_hand():
    # four rows: confidences 0.9, 0.9 (bin 14: (0.9333.., 1]? no: 0.9 is in bin 13 (0.8667, 0.9333])
    probs = [[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    labels = np.array([0, 1, 0, 1])
    # bin with conf 0.9: 2 rows, accuracy 0.5 -> gap 0.4; conf 0.6: 1 row, acc 1 -> gap 0.4;
    # conf 0.7: 1 row, acc 1 -> gap 0.3.   ECE = 2/4*0.4 + 1/4*0.4 + 1/4*0.3 = 0.375
    assert M.ece(logits_for(probs), labels, 15) == pytest.approx(0.375)


def test_ece_bins_are_right_closed():
    # confidence exactly 2/3 lies in bin (0.6, 0.6667] with 15 bins and in bin (1/3, 2/3] with 3 bins
    probs = [[2 / 3, 1 / 3]]
    bins = M.reliability_bins(logits_for(probs), np.array([0]), 3)
    assert bins["count"].tolist() == [0, 1, 0]


def test_perfect_calibration_has_zero_ece():
    probs = [[0.75, 0.25]] * 4
    labels = np.array([0, 0, 0, 1])
    assert M.ece(logits_for(probs), labels, 15) == pytest.approx(0.0, abs=1e-12)


def test_accuracy_nll_agreement_f1():
    logits = logits_for([[0.8, 0.2], [0.4, 0.6], [0.5, 0.5 - 1e-9]])
    labels = np.array([0, 0, 1])
    assert M.accuracy(logits, labels) == pytest.approx(1 / 3)
    assert M.nll(logits, labels) == pytest.approx(-(np.log(0.8) + np.log(0.4) + np.log(0.5 - 1e-9)) / 3, rel=1e-6)
    assert M.agreement(logits, logits_for([[0.1, 0.9], [0.4, 0.6], [0.9, 0.1]])) == pytest.approx(2 / 3)
    # class 0: tp 1, fp 1, fn 1 -> F1 0.5; class 1: tp 0 -> F1 0  => macro 0.25
    assert M.macro_f1(logits, labels, 2) == pytest.approx(0.25)
    assert M.classification_metrics(logits, labels, 2)["errors"] == 2  # rows 2 and 3 are wrong
    # a fourth class with no row and no prediction is left out: three classes each right, macro 1, not 3/4
    right = logits_for([[0.8, 0.1, 0.05, 0.05], [0.1, 0.8, 0.05, 0.05], [0.1, 0.05, 0.8, 0.05]])
    assert M.macro_f1(right, np.array([0, 1, 2]), 4) == pytest.approx(1.0)
    # predicted but never true counts: class 1 has F1 0 (one false positive), class 0 F1 2·1/(1+2) = 2/3
    assert M.macro_f1(logits_for([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]), 2) == pytest.approx(1 / 3)


def test_brier_by_hand():
    # row 1: (0.9-1)² + (0.1-0)² = 0.02; row 2: (0.6-0)² + (0.4-1)² = 0.72  => mean 0.37
    assert M.brier(logits_for([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1])) == pytest.approx(0.37)


def test_classwise_ece_by_hand():
    probs = [[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]
    labels = np.array([0, 1, 2])
    # class 0: p0 = .7, .7 (bin of .7: freq of label 0 is 1/2, gap .2, weight 2/3) and .2 (freq 0, gap .2,
    #          weight 1/3) -> .2
    # class 1: p1 = .2, .2 (freq 1/2, gap .3, weight 2/3) and .5 (freq 0, gap .5, weight 1/3) -> .2 + 1/6
    # class 2: p2 = .1, .1 (freq 0, gap .1, weight 2/3) and .3 (freq 1, gap .7, weight 1/3) -> 1/15 + 7/30
    expected = (0.2 + (0.2 + 1 / 6) + (1 / 15 + 7 / 30)) / 3
    assert M.classwise_ece(logits_for(probs), labels, 10) == pytest.approx(expected)


def test_kl_divergence_by_hand():
    # KL([.5, .5] || [.9, .1]) = .5 ln(.5/.9) + .5 ln(.5/.1) = ln(5/3); identical rows give 0
    teacher = logits_for([[0.5, 0.5], [0.3, 0.7]])
    student = logits_for([[0.9, 0.1], [0.3, 0.7]])
    assert M.kl_divergence(teacher, student) == pytest.approx(np.log(5 / 3) / 2)


def test_accuracy_where_teacher_right_and_wrong():
    labels = np.array([0, 1, 1, 0, 1])
    teacher = np.eye(2)[[0, 1, 0, 1, 1]]  # right on rows 0, 1, 4; wrong on 2, 3
    student = np.eye(2)[[0, 0, 1, 1, 1]]  # right on 0, 2, 4
    out = M.accuracy_where_teacher(student, teacher, labels)
    assert out == {"accuracy_teacher_right": pytest.approx(2 / 3), "accuracy_teacher_wrong": pytest.approx(1 / 2)}
    assert M.accuracy_where_teacher(teacher, teacher, labels)["accuracy_teacher_wrong"] == 0.0
    assert M.accuracy_where_teacher(student, np.eye(2)[labels], labels)["accuracy_teacher_wrong"] is None


def test_temperature_scaling_recovers_known_temperature():
    rng = np.random.default_rng(0)
    calibrated = rng.normal(0, 2, size=(20000, 5))
    # labels drawn from softmax(calibrated): those logits are calibrated, so 3x them is over-confident by T = 3
    probs = M.probabilities(calibrated)
    labels = (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)
    assert M.fit_temperature(3 * calibrated, labels) == pytest.approx(3.0, rel=0.05)
    assert M.fit_temperature(calibrated, labels) == pytest.approx(1.0, rel=0.05)
    after = M.calibration_after_scaling(3 * calibrated, labels, 3 * calibrated, labels, 15)
    assert after["nll_scaled"] < M.nll(3 * calibrated, labels)
    assert after["ece_scaled"] < M.ece(3 * calibrated, labels) / 3


def test_mcnemar_on_known_table():
    # 10 rows only A right, 2 rows only B right, 5 both right, 3 both wrong:
    # exact two-sided p = 2 * P(X <= 2 | n = 12, 1/2) = 2 * (1 + 12 + 66) / 4096
    a = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 3)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 3)
    out = M.mcnemar(a, b)
    assert out["a_only"] == 10 and out["b_only"] == 2
    assert out["p_value"] == pytest.approx(2 * 79 / 4096)
    assert M.mcnemar(a, a)["p_value"] == 1.0


def test_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]
    auc = M.roc_auc_per_class(logits, labels)
    probs = M.probabilities(logits)
    assert auc == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average=None))
    assert auc.mean() == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    # a class with no test rows has no AUC
    assert np.isnan(M.roc_auc_per_class(logits[labels != 3], labels[labels != 3])[3])


def test_roc_auc_by_hand():
    # class 0 scores: positives .8, .4; negatives .6, .2 -> 3 of 4 pairs ordered right = 0.75
    probs = [[0.8, 0.2], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]]
    auc = M.roc_auc_per_class(logits_for(probs), np.array([0, 0, 1, 1]))
    assert auc == pytest.approx([0.75, 0.75])


def test_paired_bootstrap_interval():
    # A right on 60 of 100 rows, B on 50, for two seeds: the pooled difference is exactly 0.10
    a = np.zeros((2, 100), bool)
    a[:, :60] = True
    b = np.zeros((2, 100), bool)
    b[:, 10:60] = True
    out = M.paired_bootstrap_ci(a, b, samples=4000, seed=0)
    assert out["difference"] == pytest.approx(0.10)
    # per-row differences are 1 on 10 rows, else 0: the bootstrap mean is Binomial(100, .1)/100,
    # whose 2.5 % / 97.5 % quantiles are 0.04 and 0.16
    assert out["ci_low"] == pytest.approx(0.04, abs=0.011)
    assert out["ci_high"] == pytest.approx(0.16, abs=0.011)
    assert M.paired_bootstrap_ci(a, b, samples=4000, seed=0) == out  # fixed seed: same interval
    same = M.paired_bootstrap_ci(a, a, samples=100, seed=0)
    assert same == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_roc_points_by_hand_with_a_tie():
    # scores 0.9 (pos), 0.5 (pos), 0.5 (neg), 0.1 (neg): thresholds 0.9, 0.5, 0.1
    fpr, tpr = M.roc_points(np.array([True, True, False, False]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert fpr.tolist() == [0, 0, 0.5, 1] and tpr.tolist() == [0, 0.5, 1, 1]


def test_f1_auc_and_roc_points_equal_scikit_learns_with_ties_and_absent_classes():
    from sklearn.metrics import f1_score, roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, k = int(rng.integers(2, 50)), int(rng.integers(2, 6))
        logits = np.round(rng.normal(size=(n, k)), int(rng.integers(0, 3)))  # rounding makes ties
        labels = rng.integers(0, k, n)
        expected = f1_score(labels, logits.argmax(1), average="macro", zero_division=0)
        assert M.macro_f1(logits, labels, k) == pytest.approx(expected, abs=1e-12)
        auc, probs = M.roc_auc_per_class(logits, labels), M.probabilities(logits)
        for c in range(k):
            positive = labels == c
            if not 0 < positive.sum() < n:
                assert np.isnan(auc[c])
                continue
            assert auc[c] == pytest.approx(roc_auc_score(positive, probs[:, c]), abs=1e-12)
            fpr, tpr, _ = roc_curve(positive, probs[:, c], drop_intermediate=False)
            assert np.allclose(M.roc_points(positive, probs[:, c]), [fpr, tpr])
