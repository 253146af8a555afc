"""kill -9 in the middle of distill, run it again: it resumes (fewer steps) and ends with the same students.

The stage runs as a subprocess (``stages/distill.py`` in a scratch directory holding params.yaml,
prepared data and teacher logits). Seeds one after the other: it is killed once the first seed is finished and
the second has a checkpoint; the rerun must reuse seed 0, resume seed 1 from its checkpoint, and give the
same weights and training curves as an uninterrupted in-process run. Seeds side by side: it is killed once a
seed has a checkpoint; its forked processes end with it, and the rerun resumes and gives the same students.
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

OVERRIDE = {"train": {"seeds": [0, 1], "max_steps": 60, "save_steps": 20, "eval_steps": 20, "logging_steps": 10},
            "compute": {"seed_processes": 1}}
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


def scratch(tmp_path: Path, override: dict):
    """The params, the stage's directory (params.yaml, prepared data, teacher logits) and the prepared data."""
    params = make_params(**override)
    work = tmp_path / "work"
    (work / "data/teacher_logits").mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(deep_merge(TINY, override)))
    prepared = prepare(params["data"], work / "data/prepared")
    fake_teacher_logits(prepared, work / "data/teacher_logits")
    return params, work, prepared


def assert_same_as_uninterrupted(params, work: Path, prepared, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the uninterrupted run keeps its checkpoints apart; its seeds one after the other
    params = {**params, "compute": {**params["compute"], "seed_processes": 1}}
    train_students(get_method("kd"), params, prepared, tmp_path / "ref", tmp_path / "ref_live",
                   work / "data/teacher_logits")
    for seed in (0, 1):
        assert_same_weights(weights(work / "models/students/kd", seed), weights(tmp_path / "ref", seed))
        for name in CURVES:  # the curves continue across the kill: no gap, no repeated step
            pd.testing.assert_frame_equal(
                curve(work / f"reports/training/kd/seed_{seed}", name), curve(tmp_path / f"ref_live/seed_{seed}", name)
            )
        resumed, uninterrupted = (files(folder) for folder in (work / f"reports/training/kd/seed_{seed}",
                                                               tmp_path / f"ref_live/seed_{seed}"))
        assert resumed == uninterrupted  # every file of the curves, bit for bit: dvc.lock is the same


def files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def test_killed_distill_resumes_and_matches_uninterrupted_run(tmp_path, monkeypatch):
    params, work, prepared = scratch(tmp_path, OVERRIDE)
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
    assert_same_as_uninterrupted(params, work, prepared, tmp_path, monkeypatch)


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead child nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the processes from Linux's /proc")
def test_killed_distill_with_seeds_side_by_side_leaves_no_process_and_resumes(tmp_path, monkeypatch):
    # long enough (600 steps) that the stage is still training when its first checkpoint is seen and it is killed
    override = {**OVERRIDE, "train": {**OVERRIDE["train"], "max_steps": 600}, "compute": {"seed_processes": 2}}
    params, work, prepared = scratch(tmp_path, override)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-m", "distillery.launch", str(REPO / "stages/distill.py")], cwd=work,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # one thread
    deadline = time.monotonic() + 300
    while not list((work / ".cache/checkpoints/kd").glob("*/trainer/checkpoint-*/trainer_state.json")):
        assert first.poll() is None, f"distill ended before it could be killed:\n{first.stdout.read()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    workers = children(first.pid)
    assert len(workers) == 2, "one forked process per seed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers):
        assert time.monotonic() < deadline, "the forked processes outlived the stage"
        time.sleep(0.05)
    assert not (work / "models/students/kd").exists(), "a killed run must not leave outputs"

    second = subprocess.run([sys.executable, "-m", "distillery.launch", str(REPO / "stages/distill.py")], cwd=work,
                            env=env, capture_output=True, text=True)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log
    assert "training seeds [0, 1] side by side in 2 processes" in log
    assert re.findall(r"resuming from \S+: step (\d+) of 600", log), log
    assert_same_as_uninterrupted(params, work, prepared, tmp_path, monkeypatch)
