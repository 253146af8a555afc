"""Adding seeds to a finished experiment: `dvc exp run -S 'train.seeds=[0,...,6]'` after `dvc repro` of the default's
five seeds, with the finished students' runs kept (the new seeds train alone) and with `.cache/checkpoints` deleted
first (every seed trains, as before the runs were kept), in two fresh copies of this tree; and whether both end with
the same outputs (every stage output's md5 in dvc.lock). Writes bench/results/more_seeds.json.

Run: `python bench/more_seeds.py [--seeds 0,1,2,3,4,5,6]`
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from pipeline_time import ENV, REPO, fresh_copy, head_commit

RESULTS = REPO / "bench" / "results" / "more_seeds.json"


def run(cmd: list[str], work: Path) -> dict:
    """Wall time, the stages DVC ran and how many students were reused (``train_once``'s log line) in ``cmd``."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, env={**ENV, "PYTHONPATH": str(work)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    log = done.stdout + done.stderr
    return {"command": " ".join(cmd), "seconds": round(seconds, 1),
            "stages_run": re.findall(r"Running stage '([^']+)'", log),
            "students_reused": len(re.findall(r"reusing \S+/model, trained before with the same params", log))}


def output_hashes(work: Path) -> dict[str, str]:
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6", help="the new train.seeds (params.yaml has 0..4)")
    args = parser.parse_args()
    more = ["dvc", "exp", "run", "-S", f"train.seeds=[{args.seeds}]"]
    commit = head_commit()
    with contextlib.ExitStack() as stack:
        kept, fresh = (stack.enter_context(fresh_copy()) for _ in range(2))
        full = {name: run(["dvc", "repro"], work) for name, work in (("kept", kept), ("fresh", fresh))}
        shutil.rmtree(fresh / ".cache" / "checkpoints")
        rerun = {name: run(more, work) for name, work in (("kept", kept), ("fresh", fresh))}
        same = output_hashes(kept) == output_hashes(fresh)
    result = {"commit": commit, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "full": full, "rerun": rerun, "ratio": round(rerun["kept"]["seconds"] / rerun["fresh"]["seconds"], 3),
              "same_outputs": same}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, commit {result['commit']}, default params, then `{' '.join(more)}`")
    print("| runs kept | `dvc repro` s | then `dvc exp run` s | ratio | students reused | stages run |\n|---|---|---|---|---|---|")
    for name in ("fresh", "kept"):
        r = rerun[name]
        print(f"| {'yes' if name == 'kept' else 'no (deleted)'} | {full[name]['seconds']:.1f} | {r['seconds']:.1f} | "
              f"{r['seconds'] / rerun['fresh']['seconds']:.2f} | {r['students_reused']} | {', '.join(r['stages_run'])} |")
    print(f"same outputs (every md5 in dvc.lock): {same}")


if __name__ == "__main__":
    main()
