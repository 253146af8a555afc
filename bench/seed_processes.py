"""Students for several seeds: one process looping over the seeds vs one process per seed.

The alternative to the distill stage's loop is DVC `matrix` (one stage, so one process, per
seed). Each process pays for `import torch` and `transformers`; this measures what that costs
on the default, side by side in one run, in a fresh copy of the repo.

Run: `python bench/seed_processes.py [--seeds 5]`
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import fresh_copy  # noqa: E402


def distill(work: Path, seeds: list[int]) -> float:
    """Seconds for `python stages/distill.py` with `train.seeds = seeds`, from no checkpoint."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"]["seeds"] = seeds
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(work / ".cache/checkpoints", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(work)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "stages/distill.py"], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    seeds = list(range(parser.parse_args().seeds))
    with fresh_copy() as work:
        subprocess.run(["dvc", "repro", "-q", "teacher_logits"], cwd=work, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(work)})
        looped = distill(work, seeds)
        separate = [distill(work, [seed]) for seed in seeds]
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}; distill stage, {len(seeds)} seeds, default params")
    print("| layout | seconds | ratio |\n|---|---|---|")
    print(f"| one process, loop over {len(seeds)} seeds (what `distill` does) | {looped:.1f} | 1.00 |")
    print(f"| {len(seeds)} processes, one seed each (DVC `matrix`) | {sum(separate):.1f} | {sum(separate) / looped:.2f} |")


if __name__ == "__main__":
    main()
