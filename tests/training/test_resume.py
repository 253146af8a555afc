"""kill -9 in the middle of distill, run it again: it resumes (fewer steps) and ends with the same students.

The stage runs as a subprocess (``stages/distill.py`` in a scratch directory holding params.yaml,
prepared data and teacher logits); it is killed once the first seed is finished and the second
has a checkpoint. The rerun must reuse seed 0, resume seed 1 from its checkpoint, and give the
same weights and training curves as an uninterrupted in-process run.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from distillery.data.prepare import prepare
from distillery.methods import get_method
from distillery.training.students import train_students

from ..conftest import REPO, TINY, deep_merge, make_params
from .test_students import assert_same_weights, fake_teacher_logits, weights

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)

OVERRIDE = {"train": {"seeds": [0, 1], "max_steps": 60, "save_steps": 20, "eval_steps": 20, "logging_steps": 10}}
CURVES = ["loss", "ce", "kd", "eval/loss", "eval/accuracy"]


def distill(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(REPO / "stages/distill.py")], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )


def ready_to_kill(cwd: Path) -> bool:
    """Seed 0 finished (its model saved) and seed 1 has a complete checkpoint."""
    runs = list((cwd / ".cache/checkpoints/kd").glob("*"))
    finished = [r for r in runs if (r / "model" / "model.safetensors").exists()]
    checkpointed = [r for r in runs if list(r.glob("trainer/checkpoint-*/trainer_state.json"))]
    return bool(finished) and bool(checkpointed)


def curve(live: Path, name: str) -> pd.DataFrame:
    table = pd.read_csv(live / "plots/metrics" / f"{name}.tsv", sep="\t")
    return table.drop(columns="timestamp", errors="ignore")


def test_killed_distill_resumes_and_matches_uninterrupted_run(tmp_path, monkeypatch):
    params = make_params(**OVERRIDE)
    work = tmp_path / "work"
    (work / "data/teacher_logits").mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(deep_merge(TINY, OVERRIDE)))
    prepared = prepare(params["data"], work / "data/prepared")
    fake_teacher_logits(prepared, work / "data/teacher_logits")

    first = distill(work)
    deadline = time.monotonic() + 300
    while not ready_to_kill(work):
        assert first.poll() is None, f"distill ended before it could be killed:\n{first.stdout.read()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (work / "models/students/kd").exists(), "a killed run must not leave outputs"

    second = distill(work)
    log = second.communicate()[0]
    assert second.returncode == 0, log
    assert len(re.findall(r"reusing \S+/model, trained before with the same params", log)) == 1, log
    resumed = [int(step) for step in re.findall(r"resuming from \S+: step (\d+) of 60", log)]
    assert len(resumed) == 1 and resumed[0] in (20, 40), log  # seed 1 redoes at most 60 - 20 steps
    assert not list((work / ".cache/checkpoints/kd").glob("*/trainer")), "the Trainer's checkpoints are removed"
    print(f"rerun: seed 0 reused, seed 1 resumed at step {resumed[0]}: {60 - resumed[0]} of 120 steps run again")

    monkeypatch.chdir(tmp_path)  # the uninterrupted run keeps its checkpoints apart
    train_students(get_method("kd"), params, prepared, tmp_path / "ref", tmp_path / "ref_live",
                   work / "data/teacher_logits")
    for seed in (0, 1):
        assert_same_weights(weights(work / "models/students/kd", seed), weights(tmp_path / "ref", seed))
        for name in CURVES:  # the curves continue across the kill: no gap, no repeated step
            pd.testing.assert_frame_equal(
                curve(work / f"reports/training/kd/seed_{seed}", name), curve(tmp_path / f"ref_live/seed_{seed}", name)
            )
