"""bench/gpu_check.py: how a budget becomes each preset's schedule, and where the shared data is read."""
import json
from pathlib import Path

import pytest

from bench.gpu_check import (PRESETS_DIR, allocate, estimate_s, fraction_for, point_at, rerun_steps,
                             schedule_sets, scores, side_by_side, training_steps)
from distillery.experiments.presets import resolve

REPO = Path(__file__).resolve().parents[2]


def test_training_steps_of_the_full_mnist_hinton_schedule():
    params = resolve("mnist-hinton", [], PRESETS_DIR)
    assert training_steps(params) == (45000, 2 * 3 * 22500)  # teacher; distilled and hard student per seed
    assert training_steps(resolve("mnist-hinton", ["train.seeds=[0]"], PRESETS_DIR)) == (45000, 45000)


def test_a_budget_below_the_full_cost_scales_both_schedules_and_the_result_validates():
    params = resolve("mnist-hinton", ["train.seeds=[0]"], PRESETS_DIR)
    # 9 stages x 8 s = 72 s fixed; 90,000 steps x 1.5 ms = 135 s: 207 s in full
    assert estimate_s(params, 1.0, 9, 8.0, 1.5, 12.0) == pytest.approx(207.0)
    fraction = fraction_for(params, 99.0, 9, 8.0, 1.5, 12.0)
    assert fraction == pytest.approx(27 / 135)
    assert fraction_for(params, 500.0, 9, 8.0, 1.5, 12.0) == 1.0 and schedule_sets(params, 1.0) == []
    scaled = resolve("mnist-hinton", ["train.seeds=[0]", *schedule_sets(params, fraction)], PRESETS_DIR)
    assert scaled["teacher"]["train"]["max_steps"] == 9000 and scaled["teacher"]["train"]["eval_steps"] == 200
    assert scaled["train"]["max_steps"] == 4500 and scaled["train"]["eval_steps"] == scaled["train"]["save_steps"] == 300
    assert estimate_s(scaled, 1.0, 9, 8.0, 1.5, 12.0) == pytest.approx(99.0)


def test_a_comparison_of_student_params_reruns_the_students_and_its_cost_counts_in_the_schedule():
    compare = ["train.precision=fp32"]
    params = resolve("mnist-hinton", [], PRESETS_DIR)
    assert rerun_steps(resolve("mnist-hinton", compare, PRESETS_DIR), compare) == 2 * 3 * 22500  # not the teacher
    teacher_side = ["teacher.train.precision=fp32"]
    assert rerun_steps(resolve("mnist-hinton", teacher_side, PRESETS_DIR), teacher_side) == 45000 + 2 * 3 * 22500
    one_seed = resolve("mnist-hinton", ["train.seeds=[0]"], PRESETS_DIR)
    # twice 9 stages x 8 s = 144 s fixed; (90,000 + 45,000) steps x 1.5 ms = 202.5 s
    assert estimate_s(one_seed, 1.0, 9, 8.0, 1.5, 12.0, compare_steps=45000) == pytest.approx(346.5)
    fraction = fraction_for(one_seed, 200.0, 9, 8.0, 1.5, 12.0, compare_steps=45000)
    assert fraction == pytest.approx(56 / 202.5)
    assert estimate_s(one_seed, fraction, 9, 8.0, 1.5, 12.0, compare_steps=45000) == pytest.approx(200.0)
    assert fraction_for(params, 10_000.0, 9, 8.0, 1.5, 12.0, compare_steps=135000) == 1.0


def test_students_side_by_side_say_whether_the_difference_is_within_the_seeds_spread():
    main = {"kd": {"accuracy": 0.980, "accuracy_std": 0.002}, "hard": {"accuracy": 0.970, "accuracy_std": 0.001}}
    compared = {"kd": {"accuracy": 0.979, "accuracy_std": 0.001}, "hard": {"accuracy": 0.975, "accuracy_std": 0.002}}
    rows = side_by_side(main, compared)
    assert rows["kd"]["difference"] == pytest.approx(-0.001) and rows["kd"]["within_spread"] is True
    assert rows["hard"]["difference"] == pytest.approx(0.005) and rows["hard"]["within_spread"] is False
    assert rows["hard"]["main_std"] == 0.001 and rows["hard"]["compared"] == 0.975
    one_seed = {who: {"accuracy": 0.97} for who in ("kd", "hard")}
    assert side_by_side(one_seed, one_seed)["kd"]["within_spread"] is None  # one seed: no spread to compare with


def test_a_tiny_fraction_keeps_at_least_one_step_and_evaluates_within_it():
    params = resolve("digits-mlp", [], PRESETS_DIR)
    scaled = resolve("digits-mlp", schedule_sets(params, 0.0001), PRESETS_DIR)
    assert scaled["train"]["max_steps"] == 1 and scaled["train"]["eval_steps"] == 1
    assert scaled["teacher"]["train"]["max_steps"] == 1 and scaled["teacher"]["train"]["eval_steps"] == 1


def test_shares_give_the_cheap_preset_its_full_cost_and_the_rest_to_the_others():
    assert allocate({"big": 1000.0, "small": 50.0}, 300.0) == {"big": 250.0, "small": 50.0}
    assert allocate({"a": 400.0, "b": 400.0}, 300.0) == {"a": 150.0, "b": 150.0}


def test_shared_data_paths_point_at_the_given_folder():
    params = resolve("sst2-minilm-shared", [], PRESETS_DIR)
    moved = point_at(params, Path("/data"))
    assert moved["data"]["files"] == {"train": "/data/sst2_train.tsv.gz", "validation": "/data/sst2_validation.tsv.gz"}
    assert point_at({"data": {"source": "npz:../shared/data/mnist.npz"}}, Path("/d")) == {"data": {"source": "npz:/d/mnist.npz"}}


def test_scores_are_read_only_once_the_preset_was_evaluated(tmp_path):
    """A check cut short before ``evaluate`` must not report the copy's committed metrics (the default's) as the
    preset's."""
    (tmp_path / "reports").mkdir()
    metrics = {who: {"accuracy": 0.99, "errors": errors} for who, errors in (("teacher", 60), ("kd", 70), ("hard", 140))}
    (tmp_path / "reports/metrics.json").write_text(json.dumps(metrics))
    assert scores(tmp_path, "mnist-hinton", ["prepare", "teacher", "distill"]) == {}
    found = scores(tmp_path, "mnist-hinton", ["prepare", "teacher", "distill", "hard_baseline", "evaluate"])
    assert found["test_errors"] == {"teacher": 60, "kd": 70, "hard": 140}
    assert found["paper_test_errors"] == {"teacher": 67, "hard": 146, "kd": 74} and found["metrics"] == metrics
    assert "paper_test_errors" not in scores(tmp_path, "sst2-minilm-transfer", ["evaluate"])


def test_a_stage_past_its_time_is_stopped_with_its_children(tmp_path):
    """The budget stops dvc and the stage process it started (a training run left behind would hold the GPU)."""
    import subprocess
    import sys
    import time

    from bench.gpu_check import run_command

    marker = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              f" open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    with (tmp_path / "log").open("w") as log:
        start = time.monotonic()
        assert run_command([sys.executable, "-c", script], tmp_path, log, timeout_s=3.0) is None
        assert time.monotonic() - start < 10
        assert run_command([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, log, timeout_s=30.0) == 3
    child = int(marker.read_text())
    time.sleep(0.2)
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(child)], capture_output=True, text=True).stdout.strip()
    assert state in ("", "Z")  # gone (or a zombie until init reaps it)


@pytest.mark.slow
def test_the_check_runs_a_preset_then_its_comparison_in_the_same_copy(tmp_path):
    """On the CPU, on a tiny share of digits-mlp's schedule: the check runs every stage, then, with kd.T and kd.alpha
    changed, only the distilled students, evaluation and the plots again (on the teacher it trained), and sets the
    two runs' students side by side; its stages run on its own interpreter, whatever PATH says."""
    import os
    import subprocess
    import sys

    # the virtual environment off PATH, as when it was not activated: the check puts its interpreter first itself
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)}
    # a step estimated at 10 s keeps the schedule tiny (a few steps a run), the budget of 600 s lets a busy machine
    # finish it (60 s had cut the comparison short under make test's two workers)
    command = [sys.executable, "bench/gpu_check.py", "--presets", "digits-mlp", "--allow-cpu", "--budget-s", "600",
               "--step-ms", "10000", "--set", "train.seeds=[0,1]", "--compare", "kd.T=2", "--compare", "kd.alpha=0.7", "--label", "T2",
               "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_digits-mlp-T2.json").read_text())
    assert result["schedule_fraction"] < 1 and "cut_short" not in result and "failed" not in result
    compared = result["compare"]
    assert compared["sets"] == ["kd.T=2", "kd.alpha=0.7"] and "cut_short" not in compared
    assert set(compared["seconds"]) == set(result["seconds"])  # every stage asked again, and the total
    assert compared["skipped"] == ["prepare", "transfer", "teacher", "teacher_logits", "transfer_logits",
                                   "hard_baseline"]
    rows = compared["students_side_by_side"]
    assert rows["hard"]["difference"] == 0 and rows["hard"]["within_spread"] is True  # the same hard students
    assert rows["kd"]["main"] == result["metrics"]["kd"]["accuracy"]
    assert rows["kd"]["compared"] == compared["metrics"]["kd"]["accuracy"]
    assert compared["metrics"]["kd"] != result["metrics"]["kd"]
    assert compared["test_errors"]["teacher"] == result["test_errors"]["teacher"]


def test_a_failed_stage_ends_the_check_with_an_error_and_a_record(tmp_path):
    """A stage that exits with an error (here: the preset's data is not in --data) is recorded, and the check exits
    non-zero naming the preset; a stage the budget stopped is no failure (test above)."""
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    command = [sys.executable, "bench/gpu_check.py", "--presets", "mnist-hinton", "--allow-cpu", "--budget-s", "120",
               "--data", str(tmp_path / "data"), "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error: a stage failed in mnist-hinton" in done.stderr
    result = json.loads((tmp_path / "gpu_mnist-hinton.json").read_text())
    assert result["failed"].startswith("stage 'prepare' exited") and "metrics" not in result
    assert "file not found" in (tmp_path / "logs" / "mnist-hinton-prepare.log").read_text()
