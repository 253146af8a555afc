"""``run_side_by_side``: results in order from forked processes, each process its own slot, a job's error raised
in the caller and no job started after it, Ctrl-C ending every job at once with one line; one process runs the
jobs here."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from distillery.errors import DistilleryError
from distillery.forking import run_side_by_side, slot

from .conftest import REPO


def test_results_come_back_in_the_jobs_order_from_other_processes():
    here = os.getpid()
    data = {"rows": list(range(10))}  # a closure over the caller's data: inherited by the fork, never pickled

    def job(k):
        def run():
            time.sleep(0.05 * (4 - k))  # the first jobs end last
            return k, sum(data["rows"]) * k, os.getpid(), slot()
        return run

    results = run_side_by_side([job(k) for k in range(5)], processes=2)
    assert [r[:2] for r in results] == [(k, 45 * k) for k in range(5)]
    pids = {r[2] for r in results}
    assert here not in pids and len(pids) == 2
    slots = {pid: s for _, _, pid, s in results}  # each process has its own slot (a terminal line for its bar)
    assert sorted(slots.values()) == [0, 1]


def test_one_process_or_one_job_runs_here():
    assert run_side_by_side([lambda: (os.getpid(), slot())] * 3, processes=1) == [(os.getpid(), 0)] * 3
    assert run_side_by_side([lambda: os.getpid()], processes=4) == [os.getpid()]
    assert run_side_by_side([], processes=2) == []


def test_a_failing_job_is_raised_with_its_type_and_message():
    def fails():
        raise DistilleryError("seed 1: the run broke")

    with pytest.raises(DistilleryError, match="seed 1: the run broke"):
        run_side_by_side([lambda: 1, fails, lambda: 3], processes=2)


def test_no_job_starts_after_one_failed(tmp_path):
    """The pool queued one job ahead, which ran (a whole seed's training) after a failure or Ctrl-C."""
    def fails():
        raise DistilleryError("seed 0: the run broke")

    def slow():
        time.sleep(1)
        return 1

    with pytest.raises(DistilleryError, match="seed 0"):
        run_side_by_side([fails, slow, lambda: (tmp_path / "ran").touch()], processes=2)
    assert not (tmp_path / "ran").exists()


STAGE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from distillery.cli import interrupted_quietly
    from distillery.forking import run_side_by_side

    folder, lengths = Path(sys.argv[1]), [float(s) for s in sys.argv[2:]]

    def job(k):
        def run():
            (folder / f"started_{k}").touch()
            time.sleep(lengths[k])
            (folder / f"ended_{k}").touch()
        return run

    with interrupted_quietly():
        run_side_by_side([job(k) for k in range(len(lengths))], processes=2)
""")


@pytest.mark.parametrize("lengths, running", [
    ((300, 300, 300), [0, 1]),  # a third job waits for a free process: it never starts
    ((0, 300), [1]),  # the first job's process is idle: it printed a traceback of its wait for work
], ids=["busy", "idle"])
def test_ctrl_c_ends_the_jobs_at_once_with_one_line(tmp_path, lengths, running):
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stage = subprocess.Popen([sys.executable, str(script), str(tmp_path), *map(str, lengths)], env=env,
                             start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = [tmp_path / f"started_{k}" for k in running] + [tmp_path / f"ended_{k}" for k in range(len(lengths))
                                                                   if k not in running and k < max(running)]
        deadline = time.monotonic() + 120
        while not all(p.exists() for p in ready) and time.monotonic() < deadline and stage.poll() is None:
            time.sleep(0.1)
        assert all(p.exists() for p in ready), stage.stderr.read() if stage.poll() is not None else "not started"
        time.sleep(2.5)  # every idle process back at its wait for work, the pool settled
        os.killpg(stage.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the stage and its forked processes
        out, err = stage.communicate(timeout=120)
    finally:
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)
            stage.wait()
    assert stage.returncode == 130
    assert err.splitlines() == ["interrupted: `dvc repro` runs this stage again (a training stage resumes from its "
                                "last checkpoint)"]
    started = sorted(int(p.name.split("_")[1]) for p in tmp_path.glob("started_*"))
    assert started == sorted(set(running) | {k for k in range(len(lengths)) if k < max(running)})
    assert not any((tmp_path / f"ended_{k}").exists() for k in running)
