"""Students for several seeds: one process looping over the seeds, the seeds side by side in forked processes
(`compute.seed_processes: auto`, what `distill` does on a CPU), or one process per seed.

The third is DVC `matrix` (one stage, so one process, per seed): each process pays for `import torch` and
`transformers`. The second forks after the imports and the data, one process per core. Measured on the default,
side by side in one run (the layouts taking turns, `--repeats` rounds, the median kept), in a fresh copy of the
repo. Raw results: bench/results/seed_processes.json.

Run: `python bench/seed_processes.py [--seeds 5] [--repeats 3]`
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import fresh_copy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results/seed_processes.json"


def distill(work: Path, seeds: list[int], seed_processes: str | int) -> float:
    """Seconds for the distill stage's command with `train.seeds = seeds` and `compute.seed_processes`, from no
    checkpoint."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"]["seeds"] = seeds
    params["compute"]["seed_processes"] = seed_processes
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(work / ".cache/checkpoints", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(work)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "distillery.launch", "stages/distill.py"], cwd=work, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    layouts = {
        f"one process, loop over {len(seeds)} seeds (`compute.seed_processes: 1`)":
            lambda work: distill(work, seeds, 1),
        "one process forking one per core, seeds side by side (`auto`, what `distill` does on a CPU)":
            lambda work: distill(work, seeds, "auto"),
        f"{len(seeds)} processes, one seed each (DVC `matrix`)":
            lambda work: sum(distill(work, [seed], 1) for seed in seeds),
    }
    seconds = {name: [] for name in layouts}
    load = os.getloadavg()[0]
    with fresh_copy() as work:
        subprocess.run(["dvc", "repro", "-q", "teacher_logits"], cwd=work, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(work)})
        for _ in range(args.repeats):
            for name, run in layouts.items():
                seconds[name].append(run(work))
    machine = (f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load:.1f} at the start, "
               f"{os.getloadavg()[0]:.1f} at the end, python {sys.version.split()[0]}")
    base = statistics.median(seconds[next(iter(layouts))])
    print(f"{machine}; distill stage, {len(seeds)} seeds, default params, median of {args.repeats}")
    print("| layout | seconds | ratio |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.1f} | {statistics.median(values) / base:.2f} |")
    RESULTS.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/seed_processes.py " + " ".join(sys.argv[1:]), "machine": machine,
        "seconds": seconds}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
