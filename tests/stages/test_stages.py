"""Stage scripts run in-process on bad input: exit status 2, ``error: <message>``, no output written."""
from __future__ import annotations

import runpy
import subprocess
import sys

import numpy as np
import pytest
import yaml

from distillery.io import write_logits

from ..conftest import REPO, TINY

STAGES = ("prepare", "transfer", "teacher", "teacher_logits", "transfer_logits", "distill", "hard_baseline", "evaluate",
          "plots")


def run_stage_script(stage: str, capsys, *args: str) -> tuple[int, str]:
    """Run ``stages/<stage>.py ARGS`` as ``__main__`` in this process; its exit status and stderr."""
    saved = sys.argv
    sys.argv = [f"stages/{stage}.py", *args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(REPO / "stages" / f"{stage}.py"), run_name="__main__")
    finally:
        sys.argv = saved
    return exit_info.value.code, capsys.readouterr().err


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_checks_all_params_first(stage, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"kd": {"alpha": 1.5}}))
    code, err = run_stage_script(stage, capsys)
    assert code == 2
    assert err == "error: params.yaml: kd.alpha = 1.5: must be in [0, 1]\n"
    assert files_under(tmp_path) == ["params.yaml"]


@pytest.mark.parametrize(
    "stage, params, message",
    [
        ("distill", {"kd": {"T": 0}}, "params.yaml: kd.T = 0: must be > 0"),
        ("distill", {"kd": {"T": -1.0}}, "params.yaml: kd.T = -1.0: must be > 0"),
        ("distill", {"kd": {"alpha": -0.1}}, "params.yaml: kd.alpha = -0.1: must be in [0, 1]"),
        ("hard_baseline", {"train": {"learning_rate": -0.01}}, "params.yaml: train.learning_rate = -0.01: must be > 0"),
        ("teacher", {"teacher": {"train": {"learning_rate": -1e-3}}},
         "params.yaml: teacher.train.learning_rate = -0.001: must be > 0"),
        ("hard_baseline", {"train": {"seeds": []}}, "params.yaml: train.seeds = []: must be a non-empty list"),
        ("prepare", {"data": {"source": "imagenet:full"}}, "params.yaml: data.source = 'imagenet:full': unknown data source"),
        ("prepare", {"data": {"source": "sklearn:iris"}}, "the only scikit-learn source is 'sklearn:digits'"),
        ("distill", {"kd": {"alhpa": 0.5}}, "params.yaml: unknown param 'kd.alhpa'; did you mean 'kd.alpha'?"),
        ("evaluate", {"evaluate": {"ece_bins": 0}}, "params.yaml: evaluate.ece_bins = 0: must be > 0"),
    ],
)
def test_bad_param_names_path_and_value(stage, params, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code, err = run_stage_script(stage, capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert files_under(tmp_path) == ["params.yaml"]


@pytest.fixture
def distill_dir(tmp_path, monkeypatch, digits):
    """A scratch repo for the distill stage: tiny params and prepared digits (logits are up to each test)."""
    from distillery.data.prepared import save_prepared

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY))
    save_prepared(digits, tmp_path / "data/prepared")
    (tmp_path / "data/teacher_logits").mkdir()
    return tmp_path


def good_logits(digits, name):
    split = digits.splits[name]
    return split.ids, np.eye(digits.num_labels, dtype=np.float32)[split.labels] * 5


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "train.parquet: ids do not match the prepared split: 3 missing (e.g. [0, 1, 2]), 0 extra (e.g. [])"),
        ("extra", "train.parquet: ids do not match the prepared split: 0 missing (e.g. []), 2 extra (e.g. [100000, 100001])"),
        ("classes", "train.parquet: logits have 3 classes but the data has 10 labels"),
        ("nan", "train.parquet: NaN/inf logits for ids [0]"),
        ("inf", "train.parquet: NaN/inf logits for ids [0]"),
        ("absent", "train.parquet: logits file not found (run the teacher_logits stage)"),
    ],
)
def test_bad_logits_stop_distill_before_training(distill_dir, digits, case, message, capsys):
    for name in ("train", "validation"):
        ids, logits = good_logits(digits, name)
        if name == "train":
            if case == "absent":
                continue
            if case == "missing":
                ids, logits = ids[3:], logits[3:]
            elif case == "extra":
                ids = np.concatenate([ids, [100000, 100001]])
                logits = np.concatenate([logits, logits[:2]])
            elif case == "classes":
                logits = logits[:, :3]
            elif case in ("nan", "inf"):
                logits[0, 4] = np.nan if case == "nan" else np.inf
        write_logits(distill_dir / f"data/teacher_logits/{name}.parquet", ids, logits)
    before = files_under(distill_dir)
    code, err = run_stage_script("distill", capsys)
    assert code == 2
    assert message in err and err.startswith("error: data/teacher_logits/")
    assert files_under(distill_dir) == before, "nothing written: no model, no curves, no checkpoint"


def test_top_k_not_below_the_classes_stops_teacher_logits_before_the_teacher(distill_dir, capsys):
    (distill_dir / "params.yaml").write_text(yaml.safe_dump({**TINY, "teacher": {**TINY["teacher"], "logits_top_k": 10}}))
    before = files_under(distill_dir)
    code, err = run_stage_script("teacher_logits", capsys)
    assert code == 2
    assert err == ("error: teacher.logits_top_k = 10: must be between 1 and 9 (the data has 10 classes; null stores "
                   "every logit)\n")
    assert files_under(distill_dir) == before


@pytest.mark.parametrize("stage, absent", [
    ("prepare", ("torch", "transformers", "datasets", "torchao")),
    ("transfer", ("torch", "transformers", "datasets", "torchao")),
    ("plots", ("torch", "transformers", "datasets", "torchao")),
    ("evaluate", ("transformers.trainer", "datasets")),  # loads PreTrainedModels, trains none
])
def test_stage_imports_only_what_the_default_uses(stage, absent):
    """A stage's imports are paid on every run: ~10 s of transformers for stages that never train or tokenize, 1 s of
    torch for those that only read params.yaml (its schema reads every method's declaration)."""
    code = (f"import runpy, sys; runpy.run_path('stages/{stage}.py', run_name='imported'); "
            f"print(sorted(m for m in {absent!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
