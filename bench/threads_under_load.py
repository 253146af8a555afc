"""Per-step time of the default student with 1 vs all torch threads, on an idle and on a busy machine.

"Busy" is one CPU-burning process per core started by this script (what a second experiment, a
test run or another user does to a shared machine). With several intra-op threads, each step of
a tiny model waits for threads the OS has descheduled; one thread does not wait for anyone.

Run: `python bench/threads_under_load.py [--steps 300]`
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainer_overhead import data, plain_loop  # noqa: E402


def burn() -> None:
    while True:
        pass


def ms_per_step(threads: int, steps: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    dataset = data()
    plain_loop(dataset, 20, 64)  # warm-up
    return 1000 * statistics.median(plain_loop(dataset, steps, 64) for _ in range(repeats)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    cores = os.cpu_count()
    rows = []
    for load in ("idle", "busy"):
        burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(cores if load == "busy" else 0)]
        for p in burners:
            p.start()
        try:
            rows += [(load, t, ms_per_step(t, args.steps, args.repeats)) for t in (1, cores)]
        finally:
            for p in burners:
                p.terminate()
    base = rows[0][2]
    print(f"{cores} CPUs, torch {torch.__version__}; plain training loop of MLP 64-16-10, batch 64, "
          f"{args.steps} steps, median of {args.repeats}; busy = {cores} CPU-burning processes")
    print("| machine | torch threads | ms/step | vs idle, 1 thread |\n|---|---|---|---|")
    for load, threads, ms in rows:
        print(f"| {load} | {threads} | {ms:.2f} | {ms / base:.1f}× |")


if __name__ == "__main__":
    main()
