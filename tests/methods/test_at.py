"""at: attention maps and the term by hand, its invariances, tiny CNN training, and the refusals."""
import numpy as np
import pytest
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs
from distillery.methods.at import at_loss, at_terms, attention_map
from distillery.methods.kd import kd_terms
from distillery.models.zoo import build_model

from ..conftest import make_params
from .training import logged, same_weights, setup_teacher, train, weights

TEACHER = {"model": {"arch": "cnn", "channels": [8, 16], "hidden_size": 16}}
STUDENT = {"model": {"arch": "cnn", "channels": [4, 8], "hidden_size": 8}}
CNNS = {"teacher": TEACHER, "student": STUDENT, "train": {"seeds": [0]}}


def np_attention(f, p):
    q = (np.abs(f) ** p).mean(axis=1).reshape(len(f), -1)
    return q / np.sqrt((q ** 2).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_attention_maps_and_term_by_hand(p):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(3, 4, 2, 2)), rng.normal(size=(3, 6, 2, 2))
    first = np.mean([abs(s[0, c, 0, 0]) ** p for c in range(4)])  # Q of example 0 at position (0, 0)
    norm = np.sqrt(sum(np.mean([abs(s[0, c, i, j]) ** p for c in range(4)]) ** 2 for i in range(2) for j in range(2)))
    q_s = attention_map(torch.tensor(s), p).numpy()
    assert q_s.shape == (3, 4) and q_s[0, 0] == pytest.approx(first / norm, rel=1e-12)
    np.testing.assert_allclose(q_s, np_attention(s, p), rtol=1e-12)
    expected = ((np_attention(s, p) - np_attention(t, p)) ** 2).mean()  # over batch and the 2x2 positions
    assert at_loss(torch.tensor(s), torch.tensor(t), p).item() == pytest.approx(expected, rel=1e-12)


def test_zero_for_identical_maps_and_invariant_to_scaling_a_map():
    s, t = torch.randn(4, 3, 4, 4, dtype=torch.float64), torch.randn(4, 5, 4, 4, dtype=torch.float64)
    assert at_loss(t, t).item() == 0.0
    assert at_loss(-2.5 * t, t).item() == pytest.approx(0.0, abs=1e-28)
    assert at_loss(7.0 * s, 0.1 * t).item() == pytest.approx(at_loss(s, t).item(), rel=1e-12)


def test_terms(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    at = torch.tensor(0.02, dtype=torch.float64)
    got = at_terms(s, t, y, at, 4.0, 0.3, beta=1000.0)
    assert got.loss.item() == pytest.approx(kd_terms(s, t, y, 4.0, 0.3).loss.item() + 10.0, rel=1e-12)
    assert set(got.terms) == {"ce", "kd", "at"} and got.terms["at"] is at


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    return setup_teacher(digits, tmp_path_factory.mktemp("at"),
                         teacher={**TEACHER, "train": {"max_steps": 30, "eval_steps": 10}})


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("at", digits, root, "at", **CNNS, kd={"at": {"beta": 500.0}})
    loss, ce, kd, at = (logged(root, "at", k) for k in ("loss", "ce", "kd", "at"))
    assert len(at) == 4 and np.isfinite(at).all() and (at > 0).all()
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * kd + 250.0 * at, rtol=1e-3)


def test_one_chosen_pair_trains(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("at", digits, root, "at2", **CNNS, kd={"at": {"layers": [2]}})
    both, second = logged(root, "at", "at"), logged(root, "at2", "at")
    assert np.isfinite(second).all() and second[0] < both[0]  # one pair's term of the two


def test_alpha_zero_and_beta_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    at = train("at", digits, root, "at0", **CNNS, kd={"alpha": 0.0, "at": {"beta": 0.0}})
    hard = train(None, digits, root, "hard", **CNNS)
    assert same_weights(weights(at), weights(hard))


def test_pairs_of_another_spatial_size_are_refused_before_training(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    with pytest.raises(DistilleryError, match=r"kd.method = 'at': kd.at.layers: the student's block 1 gives 4x4 "
                                              r"attention maps and the teacher's block 2 2x2"):
        train("at", digits, root, "bad", **CNNS, kd={"at": {"layers": [[1, 2]]}})
    assert not (root / "bad").exists()


@pytest.mark.parametrize("groups, message", [
    ({}, r"kd.method = 'at': needs CNN teacher and student \(student.model.arch = 'mlp'\)"),
    ({"student": STUDENT}, r"kd.method = 'at': needs CNN teacher and student \(teacher.model.arch = 'mlp'\)"),
    ({**CNNS, "kd": {"at": {"layers": [3]}}}, r"kd.method = 'at': kd.at.layers: the student has no block 3 "
                                              r"\(blocks 1..2"),
    ({**CNNS, "kd": {"at": {"layers": [[1, 0]]}}}, r"kd.at.layers: the teacher has no block 0"),
    ({**CNNS, "kd": {"at": {"layers": [[1, 2, 3]]}}}, r"kd.at.layers = \[\[1, 2, 3\]\]: each entry must be"),
    ({**CNNS, "kd": {"at": {"beta": -1.0}}}, r"kd.at.beta = -1.0: must be >= 0"),
    ({**CNNS, "kd": {"at": {"p": 0}}}, r"kd.at.p = 0: must be > 0"),
])
def test_params_are_refused_at_validation(groups, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(**{**groups, "kd": {**groups.get("kd", {}), "method": "at"}})


def test_a_ready_teacher_is_checked_on_its_model():
    ready = make_params(student=STUDENT, teacher={"checkpoint": "models/ready"},
                        kd={"method": "at", "at": {"layers": [[2, 4]]}})
    assert ready["teacher"]["model"]["arch"] == "mlp"  # params do not describe a ready teacher: its model is checked
    hp = make_params(**CNNS, kd={"method": "at"})["kd"]["at"]
    student = build_model({**STUDENT["model"], "dropout": 0.0}, [8, 8], list("ab"))
    cnn = build_model({**TEACHER["model"], "dropout": 0.0}, [8, 8], list("ab"))
    mlp = build_model({"arch": "mlp", "hidden_sizes": [8], "dropout": 0.0}, [8, 8], list("ab"))
    assert METHODS["at"].check(student, cnn, hp) is None
    assert METHODS["at"].check(student, mlp, hp) == "needs CNN teacher and student (the teacher is an mlp model)"
    assert "the teacher has no block 3" in METHODS["at"].check(student, cnn, {**hp, "layers": [[2, 3]]})


def test_bf16_feature_maps_are_compared_in_float32_with_autocast_off():
    s, t = torch.randn(4, 3, 4, 4) * 30, torch.randn(4, 5, 4, 4)
    outputs = [SequenceClassifierOutput(logits=torch.randn(4, 3), hidden_states=(None, h.bfloat16())) for h in (s, t)]
    inputs = StepInputs(student=outputs[0], labels=torch.zeros(4, dtype=torch.long), teacher_logits=outputs[1].logits,
                        teacher=outputs[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = METHODS["at"].loss(inputs, METHODS["at"].hyperparams(make_params(**CNNS, kd={"method": "at"})["kd"]))
    assert got.terms["at"].dtype == torch.float32
    assert got.terms["at"].item() == pytest.approx(at_loss(s.bfloat16().double(), t.bfloat16().double()).item(),
                                                   rel=1e-5)
