"""``python -m distillery.launch``: plain python for one process, ``accelerate launch`` for several; the
``compute.processes`` param refused below 1 before any work; dvc.yaml runs the training and inference stages
through it."""
from __future__ import annotations

import os
import sys

import pytest
import yaml

from distillery import launch
from distillery.errors import DistilleryError
from distillery.params import validate

from .conftest import REPO, TINY, deep_merge
from .repo_utils import copy_repo

LAUNCHED = ("teacher", "teacher_logits", "transfer_logits", "extra_teacher", "extra_teacher_logits", "distill",
            "hard_baseline")


def test_one_process_is_plain_python():
    cmd, env = launch.command(1, ["stages/teacher.py", "--name", "wide"], cuda=False, threads=1)
    assert cmd == [sys.executable, "stages/teacher.py", "--name", "wide"] and env == {}


@pytest.mark.parametrize("cuda, env", [(False, {"ACCELERATE_USE_CPU": "true"}), (True, {})])
def test_several_processes_go_through_accelerate_launch(cuda, env):
    cmd, extra = launch.command(3, ["stages/distill.py"], cuda=cuda, threads=2)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"] and cmd[-1] == "stages/distill.py"
    flags = dict(zip(cmd[3:-1], cmd[4:-1]))  # each flag with the word after it
    assert flags["--num_processes"] == "3" and flags["--num_cpu_threads_per_process"] == "2"
    assert "--multi_gpu" in cmd and int(flags["--main_process_port"]) > 0
    assert extra == env  # CPU processes (gloo) only where there is no CUDA GPU


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_processes_below_one_are_refused_before_anything_runs(value, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(launch.os, "execve", lambda *args: started.append(args))
    with pytest.raises(SystemExit) as exit_info:
        launch.main(["--processes", value, "stages/teacher.py"])
    assert exit_info.value.code == 2 and not started
    assert f"error: compute.processes = {value}: must be an integer >= 1" in capsys.readouterr().err


def test_one_process_execs_the_script_in_place(monkeypatch):
    started = []
    monkeypatch.setattr(launch.os, "execve", lambda path, args, env: started.append(args))
    launch.main(["--processes", "1", "stages/teacher_logits.py", "--name", "wide"])
    assert started == [[sys.executable, "stages/teacher_logits.py", "--name", "wide"]]


def test_the_script_imports_the_package_of_the_repository_it_runs_in(monkeypatch):
    started = []
    monkeypatch.setattr(launch.os, "execve", lambda path, args, env: started.append(env))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/elsewhere", str(REPO)]))
    launch.main(["stages/evaluate.py"])
    assert started[0]["PYTHONPATH"] == os.pathsep.join([str(REPO), "/elsewhere"])  # this repository first, once


def test_a_copy_of_the_repository_runs_its_own_package_whatever_is_installed(tmp_path):
    """As DVC runs an experiment in a temporary copy of the workspace (queued sweeps, `dvc exp run --temp`, `make
    tune`): the stage, a script run as a file, imports the copy's ``distillery``, not the one an editable install
    (`make setup`) points at, nor one on PYTHONPATH."""
    import shutil
    import subprocess

    copy = tmp_path / "copy"
    shutil.copytree(REPO / "distillery", copy / "distillery", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "stages").mkdir()
    (copy / "stages" / "probe.py").write_text("import distillery\nprint(distillery.__file__)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the installed package, and another copy on the path
    done = subprocess.run([sys.executable, "-m", "distillery.launch", "stages/probe.py"], cwd=copy, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(copy / "distillery" / "__init__.py")


def test_params_refuse_processes_below_one():
    with pytest.raises(DistilleryError, match=r"compute\.processes = 0: must be >= 1"):
        validate({"compute": {"processes": 0}})


@pytest.mark.parametrize("group, where", [({"train": {"batch_size": 63}}, "train"),
                                          ({"teacher": {"train": {"batch_size": 63}}}, "teacher.train")])
def test_batch_size_must_split_evenly_between_processes(group, where):
    with pytest.raises(DistilleryError, match=rf"{where}\.batch_size = 63: must be a multiple of compute\.processes "
                                              r"\(2\)"):
        validate(deep_merge({"compute": {"processes": 2}}, group))
    both = {"compute": {"processes": 3}, "train": {"batch_size": 63}, "teacher": {"train": {"batch_size": 63}}}
    assert validate(both)["compute"]["processes"] == 3


def test_dvc_yaml_launches_every_stage_and_only_training_and_inference_in_several_processes():
    """Every stage starts through the launcher (its numerics pinned); only training and inference take processes."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith("python -m distillery.launch "), (name, cmd)
        launched = cmd.startswith("python -m distillery.launch --processes ${compute.processes} stages/")
        assert launched == (name in LAUNCHED), (name, cmd)


def test_dvc_resolves_the_process_count_into_each_command(tmp_path):
    from dvc.repo import Repo

    repo = copy_repo(tmp_path, deep_merge(TINY, {"compute": {"processes": 2}, "teachers": {"wide": {}}}))
    commands = {stage.name: stage.cmd for stage in Repo(str(repo)).index.stages}
    assert commands["distill"] == "python -m distillery.launch --processes 2 stages/distill.py"
    assert commands["extra_teacher@wide"] == "python -m distillery.launch --processes 2 stages/teacher.py --name wide"
    assert commands["evaluate"] == "python -m distillery.launch stages/evaluate.py"  # one process, numerics pinned


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_stage_ends_when_the_process_that_started_it_is_killed(tmp_path):
    """As ``kill -9`` of ``dvc repro``: its stage, started through ``distillery.launch``, does not run on."""
    import signal
    import subprocess
    import time

    (tmp_path / "stage.py").write_text("import os, pathlib, time\n"
                                       "pathlib.Path('stage.pid').write_text(str(os.getpid()))\ntime.sleep(60)\n")
    starts_stage = (f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-m', 'distillery.launch', "
                    f"'stage.py'], env={{'PYTHONPATH': {str(REPO)!r}}})\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", starts_stage], cwd=tmp_path)
    pid_file = tmp_path / "stage.pid"
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    stage = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def running(pid: int) -> bool:
        try:
            state = [line for line in open(f"/proc/{pid}/status") if line.startswith("State:")][0]
        except FileNotFoundError:
            return False
        return "Z" not in state.split()[1]  # a zombie has ended

    for _ in range(100):
        if not running(stage):
            break
        time.sleep(0.1)
    else:
        os.kill(stage, signal.SIGKILL)
        pytest.fail("the stage went on after the process that started it was killed")
