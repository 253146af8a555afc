"""`make tune` with 1 and with 2 workers for the same trial budget, side by side in one run.

In a fresh copy of the repo with small settings (one seed, short student training): `dvc repro` once, so
both runs start from the same cached teacher, then `python -m distillery.experiments.tune --jobs J --trials N` for
J = 1 and 2, each its own study (same seed) in its own SQLite file. Writes bench/results/tune_workers.json
and prints a Markdown table. The load average beside each time says how busy the machine was.

Run: `python bench/tune_workers.py [--trials 4]`
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import REPO, fresh_copy  # noqa: E402

SMALL = {  # the tests' tiny teacher and students, one seed: a trial is distill -> evaluate -> plots
    "teacher": {"model": {"hidden_sizes": [32]},
                "train": {"learning_rate": 0.01, "max_steps": 100, "eval_steps": 20, "logging_steps": 10}},
    "student": {"model": {"hidden_sizes": [8]}},
    "train": {"seeds": [0], "max_steps": 200, "eval_steps": 50, "logging_steps": 10, "save_steps": 100},
    "evaluate": {"bootstrap_samples": 1000, "timing_repeats": 3, "timing_warmup": 1},
}


def _merge(base: dict, override: dict) -> dict:
    return {**base, **{k: _merge(base.get(k) or {}, v) if isinstance(v, dict) else v for k, v in override.items()}}


def set_params(work: Path, override: dict) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(_merge(params, override), sort_keys=False))
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "params"], cwd=work,
                   check=True)


def tune(work: Path, jobs: int, trials: int, env: dict) -> dict:
    """Wall seconds of one `make tune`-equivalent run with ``jobs`` workers and its study's own storage."""
    set_params(work, {"tune": {"study": f"bench-j{jobs}", "storage": f"sqlite:///reports/tune-j{jobs}.db"}})
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "distillery.experiments.tune", "--jobs", str(jobs), "--trials", str(trials)], cwd=work,
                   env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return {"jobs": jobs, "trials": trials, "seconds": seconds, "load_before": load, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    trials = parser.parse_args().trials
    with fresh_copy() as work:
        env = {**os.environ, "PYTHONPATH": str(work)}
        set_params(work, SMALL)
        start = time.perf_counter()
        subprocess.run(["dvc", "repro", "-q"], cwd=work, env=env, check=True, capture_output=True)
        repro = time.perf_counter() - start
        rows = [tune(work, jobs, trials, env) for jobs in (1, 2)]
    result = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "settings": SMALL, "repro_seconds": repro,
              "runs": rows}
    path = REPO / "bench" / "results" / "tune_workers.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs; `dvc repro` of the small settings first: {repro:.0f} s; {trials} trials per run")
    print("| workers | seconds | seconds per trial | ratio to 1 worker | load average before → after |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['jobs']} | {r['seconds']:.0f} | {r['seconds'] / trials:.0f} | {r['seconds'] / rows[0]['seconds']:.2f} "
              f"| {r['load_before']:.1f} → {r['load_after']:.1f} |")


if __name__ == "__main__":
    main()
