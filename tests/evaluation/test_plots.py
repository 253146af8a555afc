"""``draw_figures``: figures drawn in forked processes are the same files as drawn one after the other, and a
failure in a child process is raised in the stage."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from distillery.evaluation import plots as P


def _figures(out):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    logits = {name: rng.normal(size=(60, 3)) + 2 * np.eye(3)[labels] for name in ("teacher", "kd", "hard")}
    return [
        (P.roc_curves, (logits, labels, ["a", "b", "c"], out / "roc.png")),
        (P.confidence_histograms, ({k: [v] for k, v in logits.items()}, labels, out / "confidence.png")),
        (P.teacher_student_scatter, (logits["teacher"], {k: logits[k] for k in ("kd", "hard")}, labels,
                                     out / "scatter.png")),
    ]


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def test_figures_drawn_side_by_side_are_the_same_files(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    P.draw_figures(_figures(tmp_path / "one"), processes=1)
    P.draw_figures(_figures(tmp_path / "two"), processes=2)
    one = _digests(tmp_path / "one")
    assert set(one) == {"roc.png", "confidence.png", "scatter.png"}
    assert one == _digests(tmp_path / "two")


def test_a_failing_figure_is_raised(tmp_path):
    jobs = _figures(tmp_path)
    jobs[1] = (P.roc_curves, ({"kd": np.zeros((4, 3))}, np.array([0, 1]), ["a", "b", "c"], tmp_path / "bad.png"))
    with pytest.raises(IndexError):
        P.draw_figures(jobs, processes=2)
    assert not (tmp_path / "bad.png").exists()


def test_predictions_are_read_back_as_class_indices_whatever_the_names(tmp_path):
    """evaluate names the classes in predictions.csv; the plots and the model card count with indices, and a class
    named ``NA`` or ``1`` is not read as a number or as missing."""
    from distillery.evaluation.plots import read_predictions

    names = ["NA", "1", "pear, ripe"]
    pd.DataFrame({"id": [7, 9, 12], "label": ["NA", "1", "pear, ripe"], "teacher": ["1", "1", "NA"],
                  "kd_seed0": ["pear, ripe", "NA", "1"]}).to_csv(tmp_path / "predictions.csv", index=False)
    read = read_predictions(tmp_path / "predictions.csv", names)
    assert read["id"].tolist() == [7, 9, 12] and read["label"].tolist() == [0, 1, 2]
    assert read["teacher"].tolist() == [1, 1, 0] and read["kd_seed0"].tolist() == [2, 0, 1]
