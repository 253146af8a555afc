"""rkd: distances and angles by hand, the invariances of relations, tiny training, and the refusals."""
from itertools import permutations
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs
from distillery.methods.kd import kd_terms
from distillery.methods.rkd import pairwise_distances, rkd_angle, rkd_distance, rkd_terms, triplet_cosines
from distillery.models.zoo import build_model

from ..conftest import make_params
from .training import logged, same_weights, setup_teacher, train, weights

ONE_SEED = {"train": {"seeds": [0]}}


def np_huber(x):
    return np.where(np.abs(x) < 1, 0.5 * x ** 2, np.abs(x) - 0.5).mean()


def np_psi_d(e):
    d = np.array([np.sqrt(((e[i] - e[j]) ** 2).sum()) for i, j in permutations(range(len(e)), 2)])
    return d / d.mean()


def np_cosines(e):
    """cos of the angle at e_j, for distinct (j, i, k) in lexicographic order."""
    out = []
    for j, i, k in permutations(range(len(e)), 3):
        a, b = e[i] - e[j], e[k] - e[j]
        out.append(a @ b / np.sqrt(a @ a) / np.sqrt(b @ b))
    return np.array(out)


@pytest.fixture
def embeddings():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
    s[0] *= 8  # an outlier: some normalised distances differ by more than δ = 1 (Huber's linear branch)
    return s, t


def test_distances_angles_and_terms_by_hand(embeddings):
    s, t = embeddings
    d = pairwise_distances(torch.tensor(s)).numpy()
    assert d[1, 3] == pytest.approx(np.sqrt(((s[1] - s[3]) ** 2).sum()), rel=1e-12) and d[2, 2] == pytest.approx(1e-6)
    np.testing.assert_allclose(triplet_cosines(torch.tensor(s)).numpy(), np_cosines(s), rtol=1e-12)
    assert len(np_cosines(s)) == 5 * 4 * 3
    assert np.abs(np_psi_d(s) - np_psi_d(t)).max() > 1
    expected_d = np_huber(np_psi_d(s) - np_psi_d(t))
    expected_a = np_huber(np_cosines(s) - np_cosines(t))
    assert rkd_distance(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected_d, rel=1e-12)
    assert rkd_angle(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected_a, rel=1e-12)


def test_zero_for_the_same_relations_whatever_the_scale_rotation_or_width(embeddings):
    s, t = (torch.tensor(a) for a in embeddings)
    rotation = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    same = 3.0 * t @ rotation + 1.5  # a scaled, rotated, shifted copy of the teacher's embedding
    wider = torch.cat([t, torch.zeros(5, 2, dtype=torch.float64)], dim=1)  # the same points in 6 dimensions
    for student in (t, same, wider):
        assert rkd_distance(student, t).item() == pytest.approx(0.0, abs=1e-12)
        assert rkd_angle(student, t).item() == pytest.approx(0.0, abs=1e-12)
    assert rkd_distance(0.01 * s, 50.0 * t).item() == pytest.approx(rkd_distance(s, t).item(), rel=1e-10)
    assert rkd_angle(0.01 * s, 50.0 * t).item() == pytest.approx(rkd_angle(s, t).item(), rel=1e-10)


def test_small_batches_and_coincident_points_stay_finite():
    one, two = torch.randn(1, 3), torch.randn(2, 3)
    assert rkd_distance(one, one).item() == 0.0 and rkd_angle(two, two.flip(0)).item() == 0.0
    s = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]], requires_grad=True)
    loss = rkd_distance(s, torch.randn(3, 4)) + rkd_angle(s, torch.randn(3, 4))
    loss.backward()
    assert torch.isfinite(loss) and s.grad.abs().max() < 10  # the coincident pair has no direction, no gradient


def test_terms(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    distance, angle = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.02, dtype=torch.float64)
    got = rkd_terms(s, t, y, distance, angle, 4.0, 0.5, distance_weight=25.0, angle_weight=50.0)
    assert got.loss.item() == pytest.approx(kd_terms(s, t, y, 4.0, 0.5).loss.item() + 2.5 + 1.0, rel=1e-12)
    assert set(got.terms) == {"ce", "kd", "distance", "angle"}


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    return setup_teacher(digits, tmp_path_factory.mktemp("rkd"), teacher={"train": {"max_steps": 30, "eval_steps": 10}})


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    train("rkd", digits, root, "rkd", **ONE_SEED)
    loss, ce, kd, distance, angle = (logged(root, "rkd", k) for k in ("loss", "ce", "kd", "distance", "angle"))
    assert len(angle) == 4 and (distance > 0).all() and (angle > 0).all()
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * kd + 25.0 * distance + 50.0 * angle, rtol=1e-3)


def test_cnn_embeddings_train(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    cnn = {"model": {"arch": "cnn", "channels": [4], "hidden_size": 8}}
    train("rkd", digits, root, "cnn", student=cnn, train={"seeds": [0], "max_steps": 10, "logging_steps": 5},
          kd={"rkd": {"student_layer": 1}})  # the flattened feature maps of the conv block
    assert np.isfinite(logged(root, "cnn", "distance")).all()


def test_alpha_zero_and_no_weights_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    rkd = train("rkd", digits, root, "rkd0", **ONE_SEED,
                kd={"alpha": 0.0, "rkd": {"distance_weight": 0.0, "angle_weight": 0.0}})
    hard = train(None, digits, root, "hard", **ONE_SEED)
    assert same_weights(weights(rkd), weights(hard))


@pytest.mark.parametrize("kd, message", [
    ({"student_layer": 2}, r"kd.method = 'rkd': kd.rkd.student_layer = 2: the student has hidden blocks 1..1 "
                           r"\(or -1 for the last\)"),
    ({"teacher_layer": 0}, r"kd.method = 'rkd': kd.rkd.teacher_layer = 0: the teacher has hidden blocks 1..1"),
    ({"angle_weight": -1.0}, r"kd.rkd.angle_weight = -1.0: must be >= 0"),
])
def test_params_are_refused_at_validation(kd, message):
    with pytest.raises(DistilleryError, match=message):
        make_params(kd={"method": "rkd", "rkd": kd})


def test_text_models_are_refused():
    params = make_params(kd={"method": "rkd"})
    params["student"]["model"]["arch"] = "hf"
    assert METHODS["rkd"].check_params(params) == "needs MLP or CNN teacher and student (student.model.arch = 'hf')"


def test_a_ready_teacher_is_checked_on_its_model():
    hp = make_params(teacher={"checkpoint": "models/ready"}, kd={"method": "rkd", "rkd": {"teacher_layer": 3}})["kd"]
    student = build_model({"arch": "mlp", "hidden_sizes": [8], "dropout": 0.0}, [8, 8], list("ab"))
    teacher = build_model({"arch": "mlp", "hidden_sizes": [8, 8], "dropout": 0.0}, [8, 8], list("ab"))
    text = SimpleNamespace(config=SimpleNamespace(model_type="bert"))
    assert METHODS["rkd"].check(student, text, hp["rkd"]) == \
        "needs MLP or CNN teacher and student (the teacher is a Hugging Face text model)"
    assert METHODS["rkd"].check(student, teacher, hp["rkd"]) == \
        "kd.rkd.teacher_layer = 3: the teacher has hidden blocks 1..2 (or -1 for the last)"
    assert METHODS["rkd"].check(student, teacher, {**hp["rkd"], "teacher_layer": 2}) is None


def test_half_precision_embeddings_are_compared_in_float32():
    x = torch.randn(4, 4)
    student = torch.cat([x, x[:2]]).half().requires_grad_()  # coincident rows: fp16 alone gives NaN gradients
    teacher = torch.randn(6, 5).half()
    outputs = [SequenceClassifierOutput(logits=torch.randn(6, 3), hidden_states=(None, h)) for h in (student, teacher)]
    inputs = StepInputs(student=outputs[0], labels=torch.tensor([0, 1, 2, 0, 1, 2]), teacher_logits=outputs[1].logits,
                        teacher=outputs[1])
    got = METHODS["rkd"].loss(inputs, METHODS["rkd"].hyperparams(make_params(kd={"method": "rkd"})["kd"]))
    got.loss.backward()
    assert got.terms["distance"].dtype == torch.float32 and torch.isfinite(student.grad).all()
    s, t = student.detach().double(), teacher.double()
    assert got.terms["distance"].item() == pytest.approx(rkd_distance(s, t).item(), rel=1e-5)
    assert got.terms["angle"].item() == pytest.approx(rkd_angle(s, t).item(), rel=1e-5)
