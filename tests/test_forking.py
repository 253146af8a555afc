"""``run_side_by_side``: results in order from forked processes, each process its own slot, a job's error raised
in the caller; one process runs the jobs here."""
from __future__ import annotations

import os
import time

import pytest

from distillery.errors import DistilleryError
from distillery.forking import run_side_by_side, slot


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
