"""train.select: a student that over-fits a tiny noisy set ends, with ``best``, at the earlier checkpoint of
highest validation accuracy (the model saved is that one); with ``last``, at the last step; the report names
the rule and the step each student picked."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from distillery.evaluation.report import budget_text, load_selections, selection_text, setting_table
from distillery.methods import HARD, get_method
from distillery.models.inference import predict_logits
from distillery.models.zoo import load_model
from distillery.training.students import seed_dir, train_students

from ..conftest import make_params
from .test_students import fake_teacher_logits


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints go to ./.cache


@pytest.fixture
def overfitting(digits):
    """80 train rows, half of them with random labels: a wide student learns the clean half first, then memorises
    the noise, and its accuracy on the (clean) validation rows falls."""
    train = digits.splits["train"]
    n, rng = 80, np.random.default_rng(0)
    labels = train.labels[:n].copy()
    noisy = rng.random(n) < 0.5
    labels[noisy] = rng.integers(0, 10, noisy.sum())
    small = replace(train, ids=train.ids[:n], inputs=train.inputs[:n], labels=labels)
    return replace(digits, splits={**digits.splits, "train": small})


def student_params(select: str, **kd) -> dict:
    return make_params(student={"model": {"hidden_sizes": [64]}}, kd=kd or {},
                       train={"seeds": [0, 1], "max_steps": 300, "eval_steps": 20, "batch_size": 32,
                              "select": select})


def validation_accuracy(out: Path, seed: int, prepared) -> float:
    val = prepared.splits["validation"]
    return float((predict_logits(load_model(seed_dir(out, seed)), val.inputs).argmax(1) == val.labels).mean())


@pytest.mark.parametrize("kind", ["hard", "kd"])
def test_best_returns_the_earlier_better_checkpoint(overfitting, tmp_path, kind):
    method = HARD
    if kind == "kd":
        fake_teacher_logits(overfitting, tmp_path)
        method = get_method("kd")
    params = student_params("best", alpha=0.3)
    train_students(method, params, overfitting, tmp_path / "out", live_root=tmp_path / "curves", logits_dir=tmp_path)
    for record in load_selections(tmp_path / "curves"):  # curves/seed_<s>/selection.json
        assert set(record) == {"seed", "rule", "step", "validation_accuracy", "last_step", "evaluations"}
        evaluations = {int(step): accuracy for step, accuracy in record["evaluations"].items()}
        assert record["rule"] == "best" and record["last_step"] == 300 and max(evaluations) == 300
        assert evaluations[300] < max(evaluations.values()), "the student did not over-fit: the test shows nothing"
        best = min(step for step, accuracy in evaluations.items() if accuracy == max(evaluations.values()))
        assert record["step"] == best < 300  # ties go to the earlier step
        assert record["validation_accuracy"] == evaluations[best]
        assert validation_accuracy(tmp_path / "out", record["seed"], overfitting) == pytest.approx(evaluations[best])


def test_last_keeps_the_last_step(overfitting, tmp_path):
    params = student_params("last")
    train_students(HARD, params, overfitting, tmp_path / "out", live_root=tmp_path / "curves")
    for record in load_selections(tmp_path / "curves"):
        assert record["rule"] == "last" and record["step"] == record["last_step"] == 300
        assert validation_accuracy(tmp_path / "out", record["seed"], overfitting) == \
            pytest.approx(record["evaluations"]["300"])


def test_the_report_names_the_rule_and_each_picked_step(digits):
    train = student_params("best")["train"]
    selections = {"kd": [{"seed": 0, "step": 60, "last_step": 300, "validation_accuracy": 0.5},
                         {"seed": 1, "step": 300, "last_step": 300, "validation_accuracy": 0.6}],
                  "hard": [{"seed": 0, "step": 40, "last_step": 300, "validation_accuracy": 0.45},
                           {"seed": 1, "step": 80, "last_step": 300, "validation_accuracy": 0.55}]}
    text = selection_text(train, selections)
    assert "`train.select: best`" in text and "every 20 steps (ties: the earlier step)" in text
    assert "distilled: steps 60, 300 (seeds 0, 1; mean validation accuracy there 0.5500)" in text
    assert "hard: steps 40, 80 (seeds 0, 1; mean validation accuracy there 0.5000)" in text
    assert "1 of 4 students peaked at their last evaluation" in text
    assert "chosen on validation" in budget_text(train)
    last = student_params("last")["train"]
    assert "each student at step 300" in selection_text(last, {"kd": [], "hard": []})
    assert "not chosen on validation" in budget_text(last)
    metrics = {"teacher": {"params": 1}, "kd": {"params": 1}}
    table = setting_table(make_params(), digits.meta, metrics, None, selections)
    assert "| student checkpoint |" in table and "steps 60, 300" in table

