"""Several processes for one stage: rows split and joined by id (one process here), and end to end on CPU with two
processes (gloo): the teacher and distill stages finish, the logits equal the one-process ones, the students match."""
from __future__ import annotations

import contextlib
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest

from distillery import distributed
from distillery.errors import DistilleryError
from distillery.models.inference import split_logits, split_logits_across_processes
from distillery.io import read_logits
from distillery.models.zoo import build_model

from .conftest import REPO, TINY, deep_merge, make_params
from .repo_utils import ENV, copy_repo


def test_gather_by_id_orders_the_rows_as_the_expected_ids():
    values = np.array([[3.0], [1.0], [2.0]])
    out = distributed.gather_by_id(np.array([30, 10, 20]), values, np.array([10, 20, 30]), "x")
    np.testing.assert_array_equal(out, [[1.0], [2.0], [3.0]])


@pytest.mark.parametrize("ids, problem", [([10, 20], r"lost: \[30\]"), ([10, 20, 20, 30], r"doubled: \[20\]"),
                                          ([10, 20, 30, 40], r"unexpected: \[40\]")])
def test_gather_by_id_refuses_lost_doubled_or_unexpected_rows(ids, problem):
    with pytest.raises(DistilleryError, match=rf"teacher-train logits: .*{problem}"):
        distributed.gather_by_id(np.array(ids), np.zeros((len(ids), 2)), np.array([10, 20, 30]), "teacher-train logits")


def test_one_process_owns_every_row_and_writes():
    assert distributed.processes() == 1 and distributed.is_main()
    np.testing.assert_array_equal(distributed.my_rows(5), np.arange(5))


def test_split_logits_of_some_rows_and_across_one_process(digits):
    model = build_model(make_params()["teacher"]["model"], digits.input_shape, digits.label_names)
    split = digits.splits["validation"]
    full = split_logits(model, None, split, 64, "v")
    np.testing.assert_allclose(split_logits(model, None, split, 64, "v", rows=np.array([4, 0])), full[[4, 0]],
                               atol=1e-6)  # a batch of two: other float sums
    np.testing.assert_array_equal(split_logits_across_processes(model, None, split, 64, "v"), full)


# End to end, two CPU processes. Each step's 16 rows (train.batch_size, all processes together) are split 8 + 8;
# 40 steps stay within the first epoch (640 of 1,221 rows), where they are the one-process run's rows exactly.
SETTING = deep_merge(TINY, {"compute": {"processes": 2}, "train": {"seeds": [0, 1], "batch_size": 16}})


def in_process(stage: str) -> None:
    """``stages/<stage>.py`` in this process: one process (pytest's)."""
    saved = sys.argv
    sys.argv = [f"stages/{stage}.py"]
    try:
        runpy.run_path(str(REPO / "stages" / f"{stage}.py"), run_name="__main__")
    finally:
        sys.argv = saved


def two_processes(repo, stage: str) -> None:
    """``stages/<stage>.py`` as dvc.yaml runs it with compute.processes = 2."""
    result = subprocess.run([sys.executable, "-m", "distillery.launch", "--processes", "2", f"stages/{stage}.py"],
                            cwd=repo, env={**ENV, "PYTHONPATH": str(repo)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A tiny copy of the repo, prepared, with a teacher trained by two processes."""
    repo = copy_repo(tmp_path_factory.mktemp("repo"), SETTING)
    with contextlib.chdir(repo):
        in_process("prepare")
    two_processes(repo, "teacher")
    return repo


@pytest.fixture(scope="module")
def logits(repo):
    """The teacher's logits by one process (in ``logits_1``) and by two (``data/teacher_logits``)."""
    with contextlib.chdir(repo):
        in_process("teacher_logits")
    shutil.copytree(repo / "data/teacher_logits", repo / "logits_1")
    two_processes(repo, "teacher_logits")
    return repo / "logits_1", repo / "data/teacher_logits"


@pytest.fixture(scope="module")
def students(repo, logits):
    """The distilled students by one process (in ``kd_1``) and by two (``models/students/kd``)."""
    with contextlib.chdir(repo):
        in_process("distill")
    shutil.copytree(repo / "models/students/kd", repo / "kd_1")
    two_processes(repo, "distill")
    return repo / "kd_1", repo / "models/students/kd"


def leftovers(repo) -> list[str]:
    """Temporaries of atomic writes, and training runs left behind unfinished or with their checkpoints (finished
    students' runs are kept for a re-run with more seeds)."""
    runs = [run for run in (repo / ".cache/checkpoints").glob("*/*") if run.is_dir()]
    return [str(p) for p in repo.rglob("*.tmp")] + [str(run) for run in runs
                                                    if not (run / "model").is_dir() or (run / "trainer").exists()]


@pytest.mark.slow
def test_two_processes_train_the_teacher(repo):
    from distillery.models.zoo import load_model
    from distillery.data.prepared import load_prepared

    test = load_prepared(repo / "data/prepared").splits["test"]
    teacher = load_model(repo / "models/teacher")
    assert (split_logits(teacher, None, test, 512, "t").argmax(1) == test.labels).mean() > 0.8
    steps = np.loadtxt(repo / "reports/training/teacher/plots/metrics/loss.tsv", skiprows=1, usecols=0)
    assert steps.tolist() == list(range(10, 101, 10))  # one writer: each logged step once
    assert not leftovers(repo)


@pytest.mark.slow
def test_two_processes_write_the_one_process_logits(repo, logits):
    from distillery.data.prepared import SPLITS, load_prepared

    prepared = load_prepared(repo / "data/prepared")
    one, two = logits
    for name in SPLITS:
        ids = prepared.splits[name].ids  # read_logits: no id lost, doubled or foreign (train: 611 + 610 rows)
        np.testing.assert_allclose(read_logits(two / f"{name}.parquet", ids), read_logits(one / f"{name}.parquet", ids),
                                   rtol=1e-5, atol=1e-6)
    assert not leftovers(repo)


@pytest.mark.slow
def test_two_processes_train_the_one_process_students(repo, students):
    from distillery.models.zoo import load_model
    from distillery.data.prepared import load_prepared

    test = load_prepared(repo / "data/prepared").splits["test"]
    one, two = students
    accuracy = {}
    for seed in (0, 1):
        models = [load_model(root / f"seed_{seed}") for root in (one, two)]
        for name, value in models[0].state_dict().items():  # the same rows per step: the same weights
            np.testing.assert_allclose(models[1].state_dict()[name].numpy(), value.numpy(), atol=1e-5)
        accuracy[seed] = [(split_logits(m, None, test, 512, "t").argmax(1) == test.labels).mean() for m in models]
    spread = max(abs(accuracy[0][0] - accuracy[1][0]), 1 / len(test.ids))  # between seeds, or one example
    assert abs(np.mean([a[1] for a in accuracy.values()]) - np.mean([a[0] for a in accuracy.values()])) <= spread
    steps = np.loadtxt(repo / "reports/training/kd/seed_0/plots/metrics/kd.tsv", skiprows=1, usecols=0)
    assert steps.tolist() == [10, 20, 30, 40]  # logged once per logging step, by the main process only
    assert not leftovers(repo)
