"""multi_teacher: the ensemble targets by hand, each combination rule, and training on them."""
import numpy as np
import pytest
import torch

from distillery.errors import DistilleryError
from distillery.io import write_logits
from distillery.methods import METHODS
from distillery.methods.multi_teacher import ensemble_targets

from ..conftest import make_params
from .reference import np_log_softmax, np_softmax
from .training import logged, same_weights, setup_teacher, train, weights


@pytest.fixture
def teachers():
    rng = np.random.default_rng(3)
    return rng.normal(size=(6, 3, 4)) * 2  # 6 rows, 3 teachers, 4 classes


@pytest.mark.parametrize("T", [1.0, 2.0, 5.0])
def test_mean_rule_averages_the_softened_probabilities(teachers, T):
    z = ensemble_targets(teachers, np.ones(3), T, "mean")
    expected = np.mean([np_softmax(teachers[:, k] / T) for k in range(3)], axis=0)
    np.testing.assert_allclose(np_softmax(z.astype(np.float64) / T), expected, rtol=1e-5)


def test_geometric_rule_is_the_renormalised_mean_of_log_probabilities(teachers):
    T = 2.0
    z = ensemble_targets(teachers, np.ones(3), T, "geometric")
    mean_log = np.mean([np_log_softmax(teachers[:, k] / T) for k in range(3)], axis=0)
    expected = np.exp(mean_log) / np.exp(mean_log).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np_softmax(z.astype(np.float64) / T), expected, rtol=1e-5)


def test_accuracy_rule_weights_teachers_by_validation_accuracy(teachers):
    accuracies = np.array([0.9, 0.6, 0.3])
    z = ensemble_targets(teachers, accuracies, 1.0, "accuracy")
    w = accuracies / accuracies.sum()
    expected = sum(w[k] * np_softmax(teachers[:, k]) for k in range(3))
    np.testing.assert_allclose(np_softmax(z.astype(np.float64)), expected, rtol=1e-5)
    only_first = ensemble_targets(teachers, np.array([1.0, 0.0, 0.0]), 1.0, "accuracy")
    np.testing.assert_allclose(np_softmax(only_first.astype(np.float64)), np_softmax(teachers[:, 0]), rtol=1e-5)


def test_identical_teachers_give_the_single_teachers_targets(teachers):
    same = np.repeat(teachers[:, :1], 3, axis=1)
    for rule in ("mean", "geometric", "accuracy"):
        z = ensemble_targets(same, np.array([0.5, 0.7, 0.9]), 4.0, rule)
        np.testing.assert_allclose(np_softmax(z.astype(np.float64) / 4.0), np_softmax(teachers[:, 0] / 4.0),
                                   rtol=1e-5)


def test_needs_another_teacher_and_a_known_rule():
    with pytest.raises(DistilleryError, match=r"kd.method = 'multi_teacher': needs at least one more teacher"):
        make_params(kd={"method": "multi_teacher"})
    with pytest.raises(DistilleryError, match=r"kd.multi_teacher.combine = 'median': must be one of"):
        make_params(kd={"method": "multi_teacher", "multi_teacher": {"combine": "median"}}, teachers={"b": {}})


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    root = setup_teacher(digits, tmp_path_factory.mktemp("multi"))
    rng = np.random.default_rng(7)
    for name, noise in (("b", 1.0), ("c", 3.0)):  # two more teachers: the labels plus noise
        for split_name, split in digits.splits.items():
            z = rng.normal(size=(len(split.ids), digits.num_labels)) * noise
            z[np.arange(len(split.ids)), split.labels] += 3.0
            write_logits(root / "teachers" / name / f"{split_name}.parquet", split.ids, z.astype(np.float32))
    return root


def run(digits, root, name, **groups):
    from distillery.methods import get_method
    from distillery.training.students import train_students

    params = make_params(teachers={"b": {}, "c": {}}, **groups)
    out = root / name
    train_students(get_method(params["kd"]["method"]), params, digits, out, live_root=root / f"{name}-live",
                   logits_dir=root / "logits", teacher_dir=root / "models/teacher",
                   teachers_logits_root=root / "teachers")
    return out


def test_trains_on_the_combined_targets_and_alpha_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    mixed = run(digits, root, "mt", kd={"method": "multi_teacher", "multi_teacher": {"combine": "geometric"}})
    assert np.isfinite(logged(root, "mt", "kd")).all()
    zero = run(digits, root, "mt0", kd={"method": "multi_teacher", "alpha": 0.0})
    hard = train(None, digits, root, "hard")
    assert same_weights(weights(zero), weights(hard))
    assert not same_weights(weights(mixed), weights(hard))


def test_a_missing_teachers_logits_are_named(digits, root, monkeypatch):
    from distillery.methods import get_method
    from distillery.training.students import train_students

    monkeypatch.chdir(root)
    params = make_params(teachers={"b": {}, "missing": {}}, kd={"method": "multi_teacher"})
    with pytest.raises(DistilleryError, match=r"missing/train.parquet: logits file not found"):
        train_students(get_method("multi_teacher"), params, digits, root / "x", logits_dir=root / "logits",
                       teacher_dir=root / "models/teacher", teachers_logits_root=root / "teachers")
    assert not (root / "x").exists()


def test_the_loss_is_hintons_on_the_ensemble_targets():
    from transformers.modeling_outputs import SequenceClassifierOutput

    from distillery.methods import StepInputs
    from distillery.methods.kd import kd_terms

    s, t, y = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    got = METHODS["multi_teacher"].loss(StepInputs(student=SequenceClassifierOutput(logits=s), labels=y,
                                                   teacher_logits=t), {"T": 2.0, "alpha": 0.7, "combine": "mean"})
    assert torch.equal(got.loss, kd_terms(s, t, y, 2.0, 0.7).loss)
