import numpy as np
import pytest

from distillery import metrics as M


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
