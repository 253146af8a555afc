"""sp: similarity matrices and the term by hand, their invariances, tiny training, and the refusals."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs
from distillery.methods.kd import kd_terms
from distillery.methods.sp import similarity, sp_loss, sp_terms
from distillery.models.zoo import build_model

from ..conftest import make_params
from .training import logged, same_weights, setup_teacher, train, weights

ONE_SEED = {"train": {"seeds": [0]}}


def np_similarity(a):
    a = a.reshape(len(a), -1)
    g = np.array([[sum(a[i, d] * a[j, d] for d in range(a.shape[1])) for j in range(len(a))] for i in range(len(a))])
    return g / np.sqrt((g ** 2).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("s_shape, t_shape", [((5, 3), (5, 7)), ((4, 2, 3, 3), (4, 6, 3, 3))])
def test_similarities_and_term_by_hand(s_shape, t_shape):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=s_shape), rng.normal(size=t_shape)
    np.testing.assert_allclose(similarity(torch.tensor(s)).numpy(), np_similarity(s), rtol=1e-12)
    b = len(s)
    expected = ((np_similarity(t) - np_similarity(s)) ** 2).sum() / b ** 2
    assert sp_loss(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected, rel=1e-12)


def test_zero_for_the_same_similarities_and_invariant_to_scaling():
    s, t = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    wider = torch.cat([t, torch.zeros(6, 5, dtype=torch.float64)], dim=1)
    for student in (t, 4.0 * t, t @ rotation, wider):  # A·Aᵀ is the same up to scale
        assert sp_loss(student, t).item() == pytest.approx(0.0, abs=1e-28)
    assert sp_loss(0.01 * s, 30.0 * t).item() == pytest.approx(sp_loss(s, t).item(), rel=1e-12)


def test_terms(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    sp = torch.tensor(0.001, dtype=torch.float64)
    got = sp_terms(s, t, y, sp, 4.0, 0.5, gamma=3000.0)
    assert got.loss.item() == pytest.approx(kd_terms(s, t, y, 4.0, 0.5).loss.item() + 3.0, rel=1e-12)
    assert set(got.terms) == {"ce", "kd", "sp"}


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    return setup_teacher(digits, tmp_path_factory.mktemp("sp"), teacher={"train": {"max_steps": 30, "eval_steps": 10}})


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("sp", digits, root, "sp", **ONE_SEED)
    loss, ce, kd, sp = (logged(root, "sp", k) for k in ("loss", "ce", "kd", "sp"))
    assert len(sp) == 4 and (sp > 0).all()
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * kd + 3000.0 * sp, rtol=1e-3)


def test_cnn_student_pairs_several_layers(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    cnn = {"model": {"arch": "cnn", "channels": [4], "hidden_size": 8}}
    short = {"seeds": [0], "max_steps": 10, "logging_steps": 5}
    train("sp", digits, root, "last", student=cnn, train=short)
    train("sp", digits, root, "two", student=cnn, train=short, kd={"sp": {"layers": [[1, 1], -1]}})
    last, two = logged(root, "last", "sp"), logged(root, "two", "sp")
    assert two[0] > last[0]  # the first logged step sums both pairs' terms


def test_alpha_zero_and_gamma_zero_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    sp = train("sp", digits, root, "sp0", **ONE_SEED, kd={"alpha": 0.0, "sp": {"gamma": 0.0}})
    hard = train(None, digits, root, "hard", **ONE_SEED)
    assert same_weights(weights(sp), weights(hard))


@pytest.mark.parametrize("sp, message", [
    ({"layers": [2]}, r"kd.method = 'sp': kd.sp.layers: the student has no block 2 "
                      r"\(blocks 1..1, or -1 for the last\)"),
    ({"layers": [[1, 0]]}, r"kd.method = 'sp': kd.sp.layers: the teacher has no block 0"),
    ({"layers": []}, r"kd.sp.layers = \[\]: must be a non-empty list"),
    ({"layers": ["a"]}, r"kd.sp.layers = \['a'\]: each entry must be a layer number \(both models\) or a "
                        r"\[student, teacher\] pair, got 'a'"),
    ({"gamma": -1.0}, r"kd.sp.gamma = -1.0: must be >= 0"),
])
def test_params_are_refused_at_validation(sp, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(kd={"method": "sp", "sp": sp})


def test_text_models_are_refused():
    params = make_params(kd={"method": "sp"})
    params["teacher"]["model"]["arch"] = "hf"
    assert METHODS["sp"].check_params(params) == "needs MLP or CNN teacher and student (teacher.model.arch = 'hf')"


def test_a_ready_teacher_is_checked_on_its_model():
    hp = make_params(teacher={"checkpoint": "models/ready"}, kd={"method": "sp", "sp": {"layers": [[1, 3]]}})["kd"]
    student = build_model({"arch": "mlp", "hidden_sizes": [8], "dropout": 0.0}, [8, 8], list("ab"))
    teacher = build_model({"arch": "mlp", "hidden_sizes": [8, 8], "dropout": 0.0}, [8, 8], list("ab"))
    text = SimpleNamespace(config=SimpleNamespace(model_type="bert"))
    assert METHODS["sp"].check(student, text, hp["sp"]) == \
        "needs MLP or CNN teacher and student (the teacher is a Hugging Face text model)"
    assert METHODS["sp"].check(student, teacher, hp["sp"]) == \
        "kd.sp.layers: the teacher has no block 3 (blocks 1..2, or -1 for the last)"
    assert METHODS["sp"].check(student, teacher, {**hp["sp"], "layers": [[1, 2]]}) is None


def test_bf16_activations_are_compared_in_float32_with_autocast_off():
    s, t = torch.randn(8, 300) * 30, torch.randn(8, 40)
    outputs = [SequenceClassifierOutput(logits=torch.randn(8, 3), hidden_states=(None, h.bfloat16())) for h in (s, t)]
    inputs = StepInputs(student=outputs[0], labels=torch.zeros(8, dtype=torch.long), teacher_logits=outputs[1].logits,
                        teacher=outputs[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = METHODS["sp"].loss(inputs, METHODS["sp"].hyperparams(make_params(kd={"method": "sp"})["kd"]))
    assert got.terms["sp"].dtype == torch.float32
    expected = sp_loss(s.bfloat16().double(), t.bfloat16().double()).item()
    assert got.terms["sp"].item() == pytest.approx(expected, rel=1e-5)
