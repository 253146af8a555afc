"""Two processes vs one for the distill stage (``compute.processes``), side by side in one fresh copy of the repo.

A preset with a short budget (``--steps``, one seed); each layout runs ``--repeats`` times, alternating, from no
checkpoint, after one untimed run that fills the tokenization cache. The teacher logits are random (seeded) and
keyed by id: distill's time does not depend on their values, and training the sst2-minilm teacher takes most of an
hour on two cores. Reports the wall time of the stage's command and the Trainer's ``train_runtime`` (the training
loop alone); writes ``bench/results/processes_<preset>.json``.

Run: ``python bench/processes.py [--preset sst2-minilm-shared] [--steps 50] [--repeats 2]``
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import REPO, fresh_copy  # noqa: E402

LAYOUTS = {  # name -> (compute.processes, cpu_threads of each process)
    "1 process, 2 threads": (1, 2),
    "1 process, 1 thread": (1, 1),
    "2 processes, 1 thread each": (2, 1),
}


def sh(cmd: list[str], work: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(work)}
    return subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True, text=True).stdout


def set_params(work: Path, preset: str, steps: int, processes: int, threads: int) -> None:
    sets = [f"train.max_steps={steps}", "train.seeds=[0]", f"compute.processes={processes}", f"cpu_threads={threads}"]
    sh([sys.executable, "-m", "distillery.experiments.presets", preset, *[a for s in sets for a in ("--set", s)]], work)
    params = work / "params.yaml"  # ../shared/data is beside this repo, not beside the copy
    params.write_text(params.read_text().replace("../shared/", f"{REPO.parent}/shared/"))


def random_logits(work: Path) -> None:
    """data/teacher_logits: seeded random logits for every prepared row, keyed by id."""
    code = ("import numpy as np; from pathlib import Path; from distillery.io import write_logits; "
            "from distillery.data.prepared import SPLITS, load_prepared; p = load_prepared(Path('data/prepared')); "
            "rng = np.random.default_rng(0)\n"
            "for s in SPLITS: write_logits(Path('data/teacher_logits') / f'{s}.parquet', p.splits[s].ids, "
            "rng.normal(size=(len(p.splits[s].ids), p.num_labels)))")
    sh([sys.executable, "-c", code], work)


def distill(work: Path, processes: int) -> tuple[float, float]:
    """Wall seconds of the distill stage's command and the Trainer's train_runtime, from no checkpoint."""
    shutil.rmtree(work / ".cache/checkpoints", ignore_errors=True)
    start = time.perf_counter()
    out = sh([sys.executable, "-m", "distillery.launch", "--processes", str(processes), "stages/distill.py"], work)
    wall = time.perf_counter() - start
    runtime = sum(float(x) for x in re.findall(r"'train_runtime': '([0-9.]+)'", out))
    return wall, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sst2-minilm-shared")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list] = {name: [] for name in LAYOUTS}
    with fresh_copy() as work:
        set_params(work, args.preset, 1, 1, 1)
        sh([sys.executable, "stages/prepare.py"], work)
        random_logits(work)
        distill(work, 1)  # untimed: tokenization cache, page cache
        for _ in range(args.repeats):
            for name, (processes, threads) in LAYOUTS.items():
                set_params(work, args.preset, args.steps, processes, threads)
                runs[name].append(distill(work, processes))
    base_wall = np.median([w for w, _ in runs["1 process, 2 threads"]])
    base_train = np.median([t for _, t in runs["1 process, 2 threads"]])
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}; distill, preset {args.preset}, "
          f"{args.steps} steps, 1 seed, median of {args.repeats}")
    print("| layout | wall s | ratio | training loop s | ratio |\n|---|---|---|---|---|")
    for name, values in runs.items():
        wall, train = np.median([w for w, _ in values]), np.median([t for _, t in values])
        print(f"| {name} | {wall:.1f} | {wall / base_wall:.2f} | {train:.1f} | {train / base_train:.2f} |")
    out = REPO / "bench/results" / f"processes_{args.preset}.json"
    out.write_text(json.dumps({"preset": args.preset, "steps": args.steps, "repeats": args.repeats,
                               "cpus": os.cpu_count(), "runs": {k: [{"wall_s": w, "train_runtime_s": t}
                                                                   for w, t in v] for k, v in runs.items()}},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
