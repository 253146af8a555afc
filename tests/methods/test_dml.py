"""dml: the cohort loss and its gradients by hand, a cohort trained without a teacher, resume, refusals."""
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs
from distillery.methods.dml import dml_terms
from distillery.training.students import train_students
from transformers.modeling_outputs import SequenceClassifierOutput

from ..conftest import make_params
from .reference import np_log_softmax, np_softmax
from .training import logged, same_weights, train, weights


def reference_dml(logits, y, T, alpha):
    """Σ_k (1-α)·CE_k + α·T²/(K-1)·Σ_{l≠k} KL(p_l ‖ p_k) in NumPy (float64), and each student's parts."""
    K, n = len(logits), len(y)
    ce = [-np_log_softmax(s)[np.arange(n), y].mean() for s in logits]
    log_p = [np_log_softmax(s / T) for s in logits]
    kl = [T * T / (K - 1) * sum((np.exp(log_p[l]) * (log_p[l] - log_p[k])).sum() / n for l in range(K) if l != k)
          for k in range(K)]
    per_student = [(1 - alpha) * c + alpha * d for c, d in zip(ce, kl)]
    return sum(per_student), ce, kl, per_student


def reference_gradient(logits, y, k, T, alpha):
    """d L_k / d s_k with the peers held constant: ((1-α)·(softmax(s_k) - onehot) + α·T/(K-1)·Σ_l (q_k - q_l)) / n,
    q = softmax(s/T)."""
    K, n = len(logits), len(y)
    onehot = np.eye(logits[k].shape[1])[y]
    q = [np_softmax(s / T) for s in logits]
    mimicry = sum(q[k] - q[l] for l in range(K) if l != k) * T / (K - 1)
    return ((1 - alpha) * (np_softmax(logits[k]) - onehot) + alpha * mimicry) / n


@pytest.fixture
def cohort():
    rng = np.random.default_rng(1)
    return [rng.normal(size=(6, 4)) * 3 for _ in range(3)], rng.integers(0, 4, size=6)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.3), (2.0, 1.0), (3.0, 0.0)])
def test_cohort_loss_and_terms_match_numpy(cohort, K, T, alpha):
    logits, y = cohort[0][:K], cohort[1]
    got = dml_terms([torch.tensor(s) for s in logits], torch.tensor(y), T, alpha)
    total, ce, kl, per_student = reference_dml(logits, y, T, alpha)
    assert got.loss.item() == pytest.approx(total, rel=1e-12)
    assert got.terms["ce"].item() == pytest.approx(ce[0], rel=1e-12)
    assert got.terms["kl"].item() == pytest.approx(kl[0], rel=1e-12)
    assert got.terms["peer_loss"].item() == pytest.approx(sum(per_student[1:]), rel=1e-12)


@pytest.mark.parametrize("K", [2, 3])
def test_each_student_gets_the_gradient_of_its_own_loss_only(cohort, K):
    """The peers' probabilities are constants for student k: the summed loss gives s_k the gradient of L_k."""
    logits, y = cohort[0][:K], cohort[1]
    tensors = [torch.tensor(s, requires_grad=True) for s in logits]
    dml_terms(tensors, torch.tensor(y), 2.0, 0.4).loss.backward()
    for k in range(K):
        np.testing.assert_allclose(tensors[k].grad.numpy(), reference_gradient(logits, y, k, 2.0, 0.4),
                                   rtol=1e-10, atol=1e-14)


def test_identical_students_give_zero_kl(cohort):
    s, y = torch.tensor(cohort[0][0]), torch.tensor(cohort[1])
    got = dml_terms([s, s.clone(), s.clone()], y, 4.0, 0.5)
    ce = torch.nn.functional.cross_entropy(s, y).item()
    assert got.terms["kl"].item() == pytest.approx(0.0, abs=1e-12)
    assert got.loss.item() == pytest.approx(3 * 0.5 * ce, rel=1e-12)


def test_a_cohort_of_one_is_refused_and_evaluation_scores_the_main_student(cohort):
    s, y = torch.tensor(cohort[0][0]), torch.tensor(cohort[1])
    with pytest.raises(ValueError, match="at least 2 students"):
        dml_terms([s], y, 1.0, 0.5)
    evaluation = StepInputs(student=SequenceClassifierOutput(logits=s), labels=y)  # eval mode runs no peers
    got = METHODS["dml"].loss(evaluation, {"T": 1.0, "alpha": 0.5, "peers": 1})
    assert got.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(s, y).item(), rel=1e-12)


def test_peers_below_one_are_refused():
    with pytest.raises(DistilleryError, match=r"kd.dml.peers = 0: must be >= 1"):
        make_params(kd={"method": "dml", "dml": {"peers": 0}})
    assert make_params(kd={"method": "dml"})["kd"]["dml"]["peers"] == 1
    assert not METHODS["dml"].teacher_needed


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("dml")  # no teacher, no logits


def test_trains_a_cohort_without_any_teacher_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    params = make_params(kd={"method": "dml", "dml": {"peers": 2}, "T": 2.0, "alpha": 0.4})
    train_students(METHODS["dml"], params, digits, root / "cohort", live_root=root / "cohort-live",
                   logits_dir=None, teacher_dir=root / "no-teacher")
    loss, ce, kl, peer_loss = (logged(root, "cohort", k) for k in ("loss", "ce", "kl", "peer_loss"))
    assert len(loss) == 4 and np.isfinite(loss).all() and (kl > 0).all()
    np.testing.assert_allclose(loss, 0.6 * ce + 0.4 * kl + peer_loss, rtol=1e-3)
    assert ce[-1] < ce[0] and peer_loss[-1] < peer_loss[0]
    assert not any(k.startswith("peers.") for k in weights(root / "cohort")), "only the main student is saved"


def test_alpha_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    dml = train("dml", digits, root, "dml0", kd={"alpha": 0.0})
    hard = train(None, digits, root, "hard")
    assert same_weights(weights(dml), weights(hard))
    assert not same_weights(weights(train("dml", digits, root, "dml1", kd={"alpha": 0.5})), weights(hard))


class Crash(Exception):
    pass


def test_a_killed_cohort_resumes_its_peers_from_the_checkpoint(digits, tmp_path, monkeypatch, caplog):
    """The Trainer checkpoints the whole cohort; a run crashed after step 20 resumes there and ends with the
    main student of an uninterrupted run (which depends on the peers from step 20 on)."""
    def crash_after_step_25(inputs, hp):
        if inputs.peers and inputs.step >= 25:
            raise Crash
        return METHODS["dml"].loss(inputs, hp)

    params = make_params(kd={"method": "dml"}, train={"seeds": [0]})
    for where in ("killed", "plain"):
        (tmp_path / where).mkdir()
    monkeypatch.chdir(tmp_path / "killed")
    with pytest.raises(Crash):
        train_students(dataclasses.replace(METHODS["dml"], loss=crash_after_step_25), params, digits, Path("out"))
    (checkpoint,) = Path(".cache/checkpoints/dml").glob("*/trainer/checkpoint-20")
    saved = load_file(checkpoint / "model.safetensors")
    student = {k.removeprefix("student.") for k in saved if k.startswith("student.")}
    assert student and {k.removeprefix("peers.0.") for k in saved if not k.startswith("student.")} == student
    with caplog.at_level(logging.INFO, logger="distillery.training.runs"):
        train_students(METHODS["dml"], params, digits, Path("out"))
    assert "step 20 of 40" in caplog.text
    assert not any(Path(".cache/checkpoints/dml").iterdir())
    monkeypatch.chdir(tmp_path / "plain")
    train_students(METHODS["dml"], params, digits, Path("out"))
    assert same_weights(weights(tmp_path / "killed/out"), weights(tmp_path / "plain/out"))
