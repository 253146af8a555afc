"""What the cache buys on the default params: a full `dvc repro`, then `dvc exp run -S kd.T=<new>`, in a fresh copy.

Times both and counts the teacher's forward passes in each, per stage: every stage that loads the teacher
(`distillery.training.teacher.load_teacher_and_tokenizer`) logs its passes to the file named by
`DISTILLERY_COUNT_FORWARDS`. Also lists the stages DVC ran. Writes bench/results/caching.json.

Run: `python bench/caching.py [--T 2.0]`
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from pipeline_time import ENV, REPO, fresh_copy, head_commit

RESULTS = REPO / "bench" / "results" / "caching.json"


def run(cmd: list[str], work: Path, count_file: Path) -> dict:
    """Wall time, the stages DVC ran and the teacher's forward passes (calls and rows per stage) of ``cmd``."""
    env = {**ENV, "PYTHONPATH": str(work), "DISTILLERY_COUNT_FORWARDS": str(count_file)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    lines = count_file.read_text().splitlines() if count_file.exists() else []
    calls, rows = Counter(), Counter()
    for line in lines:
        stage, n = line.split("\t")
        calls[stage] += 1
        rows[stage] += int(n)
    return {"command": " ".join(cmd), "seconds": round(seconds, 1),
            "stages_run": re.findall(r"Running stage '([^']+)'", done.stdout),
            "teacher_forwards": {stage: {"calls": calls[stage], "rows": rows[stage]} for stage in calls}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=float, default=2.0, help="the new kd.T (params.yaml has 4.0)")
    args = parser.parse_args()
    commit = head_commit()
    with fresh_copy() as work, tempfile.TemporaryDirectory() as counts:
        full = run(["dvc", "repro"], work, Path(counts) / "full.tsv")
        rerun = run(["dvc", "exp", "run", "-S", f"kd.T={args.T}"], work, Path(counts) / "rerun.tsv")
    result = {"commit": commit, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "full": full, "rerun": rerun, "ratio": round(rerun["seconds"] / full["seconds"], 3)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, commit {result['commit']}, default params")
    print("| run | wall s | ratio | stages run | teacher forward passes (calls / rows) per stage |\n|---|---|---|---|---|")
    for name, r in (("`dvc repro` (empty cache)", full), (f"`dvc exp run -S kd.T={args.T}`", rerun)):
        forwards = ", ".join(f"{s}: {f['calls']} / {f['rows']}" for s, f in r["teacher_forwards"].items()) or "0"
        print(f"| {name} | {r['seconds']:.1f} | {r['seconds'] / full['seconds']:.2f} | {', '.join(r['stages_run'])} "
              f"| {forwards} |")


if __name__ == "__main__":
    main()
