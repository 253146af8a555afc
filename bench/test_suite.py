"""The test suite in one process (`python -m pytest -q`) against `make test`'s workers (pytest-xdist: one process per
core, at most 4, whole modules each, the end-to-end modules first; the flags are read from the Makefile), in a
fresh copy of this tree, taking turns. Writes bench/results/test_suite.json.

Run: `python bench/test_suite.py [--repeats 1]` (about 30 minutes on two cores)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cpu_numerics import cpu_model
from pipeline_time import ENV, REPO, fresh_copy, head_commit

RESULTS = REPO / "bench" / "results" / "test_suite.json"


def make_test_flags() -> list[str]:
    """The pytest flags `make test` adds (the Makefile's XDIST)."""
    rule = "print-xdist: ; @printf '%s\\n' '$(XDIST)'"
    done = subprocess.run(["make", "-s", "--eval", rule, "print-xdist"], cwd=REPO, capture_output=True, text=True,
                          check=True)
    return done.stdout.split()


def run_suite(work: Path, flags: list[str]) -> dict:
    """Wall time and pytest's summary line of the whole suite in ``work``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags]
    print(f"{' '.join(cmd[1:])} ...", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, env={**ENV, "PYTHONPATH": str(work)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    summary = done.stdout.strip().splitlines()[-1].strip("= ")  # pytest's last line: "N passed ... in S s"
    print(f"  {seconds:.0f} s: {summary}", flush=True)
    return {"command": " ".join(["python", *cmd[1:]]), "seconds": round(seconds, 1), "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the two, taking turns (default 1)")
    args = parser.parse_args()
    arms = {"one process": [], "make test's workers": make_test_flags()}
    commit = head_commit()
    result = {"commit": commit, "machine": f"{os.cpu_count()} CPUs ({cpu_model()}), load average "
                                                   f"{os.getloadavg()[0]:.1f} at the start",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": {name: [] for name in arms}}
    RESULTS.parent.mkdir(exist_ok=True)
    with fresh_copy() as work:
        for repeat in range(args.repeats):
            names = list(arms) if repeat % 2 == 0 else list(arms)[::-1]
            for name in names:
                result["runs"][name].append(run_suite(work, arms[name]))
                RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    best = {name: min(r["seconds"] for r in runs) for name, runs in result["runs"].items()}
    result["ratio"] = round(best["make test's workers"] / best["one process"], 3)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"make test's workers / one process: {result['ratio']} ({best})")


if __name__ == "__main__":
    main()
