"""fitnet: the hint term by hand, its regressor, the stage-wise schedule, and the checks on layers."""
import numpy as np
import pytest
import torch
from torch import nn

from distillery.errors import DistilleryError
from distillery.methods.fitnet import fitnet_terms, hint_loss
from distillery.methods.kd import kd_terms
from distillery.models.zoo import build_model

from ..conftest import make_params
from .training import logged, same_weights, setup_teacher, train, weights


def test_hint_loss_is_half_squared_distance_after_the_regressor():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    w, b = rng.normal(size=(2, 3)), rng.normal(size=2)
    regressor = nn.Linear(3, 2).double()
    with torch.no_grad():
        regressor.weight.copy_(torch.tensor(w))
        regressor.bias.copy_(torch.tensor(b))
    expected = 0.5 * ((s @ w.T + b - t) ** 2).sum(axis=1).mean()
    assert hint_loss(torch.tensor(s), torch.tensor(t), regressor).item() == pytest.approx(expected, rel=1e-12)
    identity = nn.Identity()
    assert hint_loss(torch.tensor(t), torch.tensor(t), identity).item() == 0.0


def test_feature_maps_go_through_a_one_by_one_convolution():
    s, t = torch.randn(2, 4, 3, 3, dtype=torch.float64), torch.randn(2, 6, 3, 3, dtype=torch.float64)
    regressor = nn.Conv2d(4, 6, 1).double()
    mapped = regressor(s)
    expected = 0.5 * (mapped - t).pow(2).sum(dim=(1, 2, 3)).mean()
    assert hint_loss(s, t, regressor).item() == pytest.approx(expected.item(), rel=1e-12)


def test_terms_and_stage_wise_schedule(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    hint = torch.tensor(2.0, dtype=torch.float64)
    kd = kd_terms(s, t, y, 4.0, 0.5)
    both = fitnet_terms(s, t, y, hint, 4.0, 0.5, weight=3.0, hint_only=False)
    assert both.loss.item() == pytest.approx(kd.loss.item() + 6.0, rel=1e-12)
    assert set(both.terms) == {"ce", "kd", "hint"}
    assert fitnet_terms(s, t, y, hint, 4.0, 0.5, weight=3.0, hint_only=True).loss.item() == 2.0


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    return setup_teacher(digits, tmp_path_factory.mktemp("fitnet"))


def test_trains_end_to_end_and_logs_its_terms(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    out = train("fitnet", digits, root, "fitnet", kd={"fitnet": {"hint_steps": 20}})
    hint = logged(root, "fitnet", "hint")
    assert len(hint) == 4 and np.isfinite(hint).all()
    loss, ce, kd = (logged(root, "fitnet", k) for k in ("loss", "ce", "kd"))
    np.testing.assert_allclose(loss[:2], hint[:2], rtol=1e-3)  # steps 1-20: the hint alone
    np.testing.assert_allclose(loss[2:], 0.5 * ce[2:] + 0.5 * kd[2:] + hint[2:], rtol=1e-3)
    assert not any(k.startswith("regressor") for k in weights(out)), "the regressor is not saved with the student"


def test_alpha_zero_and_no_hint_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    fit = train("fitnet", digits, root, "fit0", kd={"alpha": 0.0, "fitnet": {"weight": 0.0}})
    hard = train(None, digits, root, "hard")
    assert same_weights(weights(fit), weights(hard))


@pytest.mark.parametrize("kd, message", [
    ({"fitnet": {"student_layer": 3}}, r"kd.fitnet.student_layer = 3: the model has hidden blocks 1..1"),
    ({"fitnet": {"teacher_layer": 0}}, r"kd.fitnet.teacher_layer = 0: the model has hidden blocks 1..1"),
])
def test_layers_out_of_range_are_refused_before_training(digits, root, monkeypatch, kd, message):
    monkeypatch.chdir(root)
    with pytest.raises(DistilleryError, match=r"kd.method = 'fitnet': " + message):
        train("fitnet", digits, root, "bad", kd=kd)
    assert not (root / "bad").exists()


def test_cnn_feature_maps_of_another_size_are_refused():
    from distillery.methods import METHODS

    student = build_model({"arch": "cnn", "channels": [4], "hidden_size": 8, "dropout": 0.0}, [8, 8], list("ab"))
    teacher = build_model({"arch": "cnn", "channels": [8, 8], "hidden_size": 8, "dropout": 0.0}, [8, 8], list("ab"))
    hp = make_params(kd={"method": "fitnet", "fitnet": {"student_layer": 1, "teacher_layer": 2}})["kd"]["fitnet"]
    problem = METHODS["fitnet"].check(student, teacher, hp)
    assert "shape (4, 4, 4)" in problem and "(8, 2, 2)" in problem
    assert METHODS["fitnet"].check(student, teacher, {**hp, "teacher_layer": 1}) is None
