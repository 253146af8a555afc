"""``python -m distillery.launch [--processes N] stages/x.py [args]``: how dvc.yaml runs every stage (``N``, for the
training and inference stages, is the ``compute.processes`` param, put in each stage's ``cmd`` by DVC templating).

The stage's processes start with the environment that pins their CPU numerics (the ``reproducible_cpu`` param,
``distillery.numerics``), so every library reads it before its first work.

One process: the script runs in this process (``exec`` of plain ``python``, no launcher). Several: ``accelerate
launch`` starts N processes of it (``torchrun`` underneath): one per GPU where CUDA is available (NCCL), else N
CPU processes (gloo), each with ``cpu_threads`` torch threads; ``distillery.distributed`` is what the stages do
with them.

The script imports the ``distillery`` of the repository it runs in (``package_first``), whichever copy an
editable install of the package points at. It is sent SIGTERM when the process that started it ends (DVC, killed
with SIGTERM or ``kill -9``), so no stage runs on unseen, writing outputs the next run also writes.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

from .errors import DistilleryError, exit_on_error
from .forking import end_with_parent
from .numerics import environment, level_in, with_pinned


def process_count(value: str) -> int:
    """The ``compute.processes`` value, refused unless it is an integer >= 1."""
    try:
        count = int(value)
    except ValueError:
        count = None
    if count is None or count < 1:
        raise DistilleryError(f"compute.processes = {value}: must be an integer >= 1 (processes per training and "
                              "inference stage)")
    return count


def free_port() -> int:
    """A TCP port free now on this machine: where the processes of this run meet (29500, accelerate's default,
    would collide with another run on the same machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(processes: int, script: list[str], cuda: bool, threads: int) -> tuple[list[str], dict]:
    """The command line and the extra environment that run ``script`` (a script and its arguments) in
    ``processes`` processes."""
    if processes == 1:
        return [sys.executable, *script], {}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--num_cpu_threads_per_process", str(threads), "--main_process_port", str(free_port())]
    return [*launch, *script], {} if cuda else {"ACCELERATE_USE_CPU": "true"}


def package_first(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with the repository of this ``distillery`` (the one ``python -m distillery.launch`` found in the
    stage's working directory) first on PYTHONPATH. A script run as a file has its own folder (``stages/``) first on
    ``sys.path``, not the working directory, so it would import ``distillery`` from wherever an editable install
    points: the workspace, while DVC runs an experiment in a temporary copy (``dvc exp run --temp``, queued
    sweeps, ``make tune``), or another clone sharing the virtual environment."""
    root = str(Path(__file__).resolve().parents[1])
    kept = [path for path in environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != root]
    return {**environ, "PYTHONPATH": os.pathsep.join([root, *kept])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1", help="the compute.processes param (default 1)")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="the stage script and its arguments")
    args = parser.parse_args(argv)
    with exit_on_error():
        processes = process_count(args.processes)
        pinned = environment(level_in())
        cuda = threads = None
        if processes > 1:
            import torch

            from .params import load_params

            cuda = torch.cuda.is_available()
            threads = load_params()["cpu_threads"] or max(1, (os.cpu_count() or 1) // processes)
    cmd, env = command(processes, args.script, cuda, threads)
    end_with_parent(os.getppid(), signal.SIGTERM)  # DVC killed (SIGTERM, SIGKILL): its stage ends too
    sys.stdout.flush()
    os.execve(cmd[0], cmd, {**package_first(with_pinned(os.environ, pinned)), **env})


if __name__ == "__main__":
    main()
