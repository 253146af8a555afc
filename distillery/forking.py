"""Independent jobs side by side in forked processes: the seeds of a training stage, the figures of the plots stage.

The children are forked, so a job may be any callable, e.g. a closure over the stage's data: nothing is pickled on
the way in, only each job's result and exception on the way back. Fork only where it is safe: not after torch ran
with several threads (GNU OpenMP's thread pool does not survive a fork: the child hangs at its first parallel
operation), nor after CUDA started.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable, TypeVar

T = TypeVar("T")
_jobs: list[Callable[[], object]] = []  # set just before the children are forked: they inherit it
_slot = 0


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def slot() -> int:
    """Which of ``run_side_by_side``'s processes runs the current job: 0 .. processes - 1 (0 outside them)."""
    return _slot


def end_with_parent(parent: int, signal_number: int) -> None:
    """Have this process sent ``signal_number`` when its parent, ``parent``, ends (Linux: ``PR_SET_PDEATHSIG``,
    kept across ``exec``; elsewhere nothing), and end it now if the parent has already ended."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal_number)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


def _start_child(slots, parent: int) -> None:
    """Take the next slot, end when the process that forked this one ends, so a stage killed with ``kill -9``
    leaves no process behind writing its runs, and take Ctrl-C only while running a job (``_interrupt``)."""
    global _slot
    _slot = slots.get()
    end_with_parent(parent, signal.SIGKILL)
    signal.signal(signal.SIGINT, _interrupt)


def _interrupt(signal_number: int, frame) -> None:
    """Ctrl-C in a child: a running job stops with ``KeyboardInterrupt`` (the parent raises it); an idle child, which
    would print a traceback of its wait for work, carries on and ends when the parent shuts the pool down."""
    if _busy:
        raise KeyboardInterrupt


_busy = False


def _call(index: int):
    global _busy
    _busy = True
    try:
        return _jobs[index]()
    finally:
        _busy = False


def run_side_by_side(jobs: list[Callable[[], T]], processes: int) -> list[T]:
    """Each job's result, in the jobs' order, computed in up to ``processes`` forked processes, each taking the next
    job when it is free (1, or a single job: here, one after the other). A job that fails has its exception raised
    here once the jobs already running have ended; the jobs not yet handed to a process are cancelled."""
    global _jobs
    processes = min(processes, len(jobs))
    if processes <= 1:
        return [job() for job in jobs]
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from itertools import islice

    context = multiprocessing.get_context("fork")
    slots = context.SimpleQueue()
    for number in range(processes):
        slots.put(number)
    _jobs = list(jobs)
    try:
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_child,
                                 initargs=(slots, os.getpid())) as pool:
            # A job is handed over only when a process is free: the pool would queue one more, which a failure or
            # Ctrl-C could not cancel and would wait for (a whole seed's training).
            waiting = iter(range(len(jobs)))
            running = {pool.submit(_call, index): index for index in islice(waiting, processes)}
            results = {}
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    results[running.pop(future)] = future.result()
                    for index in islice(waiting, 1):
                        running[pool.submit(_call, index)] = index
            return [results[index] for index in range(len(jobs))]
    finally:
        _jobs = []
