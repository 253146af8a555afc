"""Hinton et al. (2015)'s omitted-class experiment: data.omit_classes and the bias correction."""
from __future__ import annotations

import numpy as np
import pytest

from distillery.errors import DistilleryError
from distillery.methods import get_method
from distillery.data.omitted import PAPER, corrected, errors, fit_bias, omitted_table, resolve, without_omitted
from distillery.evaluation.report import omitted_section
from distillery.training.students import train_students
from distillery.data.transfer import build_transfer

from ..conftest import make_params
from ..methods.training import setup_teacher


def test_bias_correction_against_a_hand_computation():
    # 3 classes, class 2 omitted. Its logit trails the winner by 0.5 on row 0, 1.2 on row 1 and 0.05 on row 2;
    # row 3 is class 0 and class 2 trails it by 0.25.
    val = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 0.8], [0.3, 0.0, 0.25], [1.0, 0.0, 0.75]])
    labels = np.array([2, 2, 2, 0])
    # b < 0.05: 1 right (row 3); 0.1..0.2: 2 right; 0.3..0.5: rows 2 and 2's neighbour row 3 turns wrong -> 1+... :
    # b = 0.1: rows 2 (0.35 > 0.3) and 3 (0.85 < 1.0) right -> 2; b = 0.3: rows 2, 3 lost? 1.05 > 1.0 -> row 3 wrong
    # b = 0.6: rows 0 (1.1 > 1.0), 2 -> 2 right; b = 1.3: rows 0, 1 (2.1 > 2.0), 2 -> 3 right (row 3 wrong)
    assert fit_bias(val, labels, [2]) == 1.3
    after = corrected(val, [2], 1.3)
    assert np.allclose(after[:, 2], val[:, 2] + 1.3) and np.array_equal(after[:, :2], val[:, :2])
    assert errors(val, labels, [2]) == {"errors": 3, "omitted_errors": 3, "omitted_rows": 3}
    assert errors(after, labels, [2]) == {"errors": 1, "omitted_errors": 0, "omitted_rows": 3}


def test_ties_take_the_smallest_bias_and_no_gain_keeps_zero():
    val = np.array([[2.0, 0.0], [0.0, 2.0]])
    assert fit_bias(val, np.array([0, 1]), [1]) == 0.0


def test_table_per_seed_and_mean():
    val = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 0.8], [0.3, 0.0, 0.25], [1.0, 0.0, 0.75]])
    labels = np.array([2, 2, 2, 0])
    table = omitted_table([val, val], [val, val], labels, labels, [2])
    assert table["mean"] == {"bias": 1.3, "errors": 3.0, "omitted_errors": 3.0, "omitted_rows": 3.0,
                             "errors_after": 1.0, "omitted_errors_after": 0.0}
    section = "\n".join(omitted_section({"omitted_classes": {"classes": ["2"], "kd": table}}))
    assert "## Omitted classes (2)" in section
    assert f"| {PAPER['errors']} | {PAPER['omitted_errors']} of 1,010 | 3.5 | 109 | 14 |" in section


@pytest.mark.parametrize("omit, message", [
    ([3], None), (["3"], None), ([10], "no class 10"), (["three"], "no class 'three'"),
    ([0, 1, 2, 3, 4, 5, 6, 7, 8], "at least two classes must stay"),
])
def test_classes_that_do_not_exist_are_refused(digits, omit, message):
    if message is None:
        assert resolve(omit, digits.label_names) == [3]
    else:
        with pytest.raises(DistilleryError, match="data.omit_classes") as info:
            resolve(omit, digits.label_names)
        assert message in str(info.value)


def test_schema_refuses_other_types():
    with pytest.raises(DistilleryError, match="data.omit_classes = \\[-1\\]: must be a list of class indices"):
        make_params(data={"omit_classes": [-1]})


def test_students_never_see_the_omitted_class(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not (without_omitted(digits, [3]).splits["train"].labels == 3).any()
    assert (without_omitted(digits, [3]).splits["validation"].labels == 3).any()  # the bias is fitted there
    root = setup_teacher(digits, tmp_path / "t", teacher={"train": {"max_steps": 10, "eval_steps": 5}})
    params = make_params(data={"omit_classes": [3], "transfer": {"augment": 1}},
                         train={"seeds": [0], "max_steps": 2, "eval_steps": 2, "logging_steps": 1, "save_steps": 2})
    transfer = build_transfer(params["data"], digits)
    seen = {}
    import distillery.training.students as S

    real = S.train_once

    def spy(run_dir, make, **kw):
        seen["labels"] = kw["train_data"].columns["labels"].numpy()
        return real(run_dir, make, **kw)

    monkeypatch.setattr(S, "train_once", spy)
    logits = np.zeros((len(transfer), 10), np.float32)
    train_students(get_method("kd"), params, digits, tmp_path / "s", logits_dir=root / "logits",
                   teacher_dir=root / "models/teacher", transfer=(transfer, logits))
    n_train = int((digits.splits["train"].labels != 3).sum())
    assert not (seen["labels"] == 3).any()
    assert len(seen["labels"]) == 2 * n_train  # labelled rows without the 3s, then their jittered variants


def test_evaluate_reports_the_omitted_classes_for_both_students(digits, tmp_path, monkeypatch):
    from distillery.evaluation.evaluate import evaluate
    from distillery.methods import HARD
    from distillery.evaluation.report import render_report

    monkeypatch.chdir(tmp_path)
    root = setup_teacher(digits, tmp_path / "t", teacher={"train": {"max_steps": 10, "eval_steps": 5}})
    params = make_params(data={"omit_classes": [3]}, evaluate={"bootstrap_samples": 50},
                         train={"seeds": [0], "max_steps": 2, "eval_steps": 2, "logging_steps": 1, "save_steps": 2})
    kw = dict(logits_dir=root / "logits", teacher_dir=root / "models/teacher")
    train_students(get_method("kd"), params, digits, tmp_path / "kd", **kw)
    train_students(HARD, params, digits, tmp_path / "hard", **kw)
    result = evaluate(params, digits, root / "models/teacher", {"kd": tmp_path / "kd", "hard": tmp_path / "hard"})
    block = result.metrics["omitted_classes"]
    threes = int((digits.splits["test"].labels == 3).sum())
    assert block["classes"] == ["3"] and block["kd"]["mean"]["omitted_rows"] == threes
    for kind in ("kd", "hard"):
        m = block[kind]["mean"]
        assert m["omitted_errors"] <= m["errors"] and m["omitted_errors_after"] <= m["omitted_rows"]
    assert "## Omitted classes (3)" in render_report(params, digits.meta, result.metrics, None, [])
