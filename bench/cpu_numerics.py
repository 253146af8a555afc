"""What pinning the CPU numerics costs: each stage of `dvc repro` timed with `reproducible_cpu: avx2` (the default)
and with `native` (each library's fastest path for this CPU), in two fresh copies of the working tree, stage by
stage taking turns (so both see the same machine load), on the default params and on a preset.

Run: `python bench/cpu_numerics.py` (default params) and
`python bench/cpu_numerics.py --preset sst2-minilm-shared --set teacher.train.max_steps=40 ...` (a preset at a
reduced budget: the ratio per stage is what matters). Raw results: bench/results/cpu_numerics_<name>.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_time import ENV, REPO, copy_worktree, timed  # noqa: E402

LEVELS = ("native", "avx2")


def configure(work: Path, level: str, preset: str | None, overrides: list[str]) -> None:
    """Write the copy's params.yaml: the preset (its ../shared paths made absolute) and overrides, at ``level``."""
    if preset:
        subprocess.run([sys.executable, "-m", "distillery.experiments.presets", preset,
                        *[a for s in overrides for a in ("--set", s)]],
                       cwd=work, env={**ENV, "PYTHONPATH": str(work)}, check=True, capture_output=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    files = params.get("data", {}).get("files") or {}
    for split, path in files.items():
        if str(path).startswith("../"):
            files[split] = str((REPO / path).resolve())
    params["reproducible_cpu"] = level
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", level]):
        subprocess.run(cmd, cwd=work, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", help="a preset of presets/ (default: the default params)")
    parser.add_argument("--set", action="append", default=[], help="key=value overrides of the preset")
    args = parser.parse_args()
    name = args.preset or "default"
    results = REPO / f"bench/results/cpu_numerics_{name}.json"
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/cpu_numerics.py", *sys.argv[1:]]),
              "machine": f"{os.cpu_count()} CPUs ({platform.machine()}, {cpu_model()}), "
                         f"load average {os.getloadavg()[0]:.1f} at the start",
              "seconds": {level: {} for level in LEVELS}}
    with contextlib.ExitStack() as stack:
        copies = {level: copy_worktree(Path(stack.enter_context(tempfile.TemporaryDirectory()))) for level in LEVELS}
        for level, work in copies.items():
            configure(work, level, args.preset, args.set)
        stages = [s for s in yaml.safe_load((copies["avx2"] / "dvc.yaml").read_text())["stages"]
                  if s not in ("extra_teacher", "extra_teacher_logits")]
        for stage in stages:
            for level, work in copies.items():
                seconds = timed(["dvc", "repro", "--force", "--single-item", "--no-run-cache", stage], work)
                result["seconds"][level][stage] = seconds
                print(f"{level} {stage}: {seconds:.1f} s", flush=True)
                results.write_text(json.dumps(result, indent=2) + "\n")
        metrics = {level: json.loads((work / "reports/headline.json").read_text()) for level, work in copies.items()}
    result["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
    result["headline"] = metrics
    results.write_text(json.dumps(result, indent=2) + "\n")
    times = result["seconds"]
    print(f"{result['machine']}; {result['command']}")
    print("| stage | native (s) | avx2 (s) | avx2 / native |\n|---|---|---|---|")
    for stage in [*stages, "**all stages**"]:
        native, pinned = ((sum(times[level].values()) if stage.startswith("**") else times[level][stage])
                          for level in LEVELS)
        print(f"| {stage if stage.startswith('**') else f'`{stage}`'} | {native:.1f} | {pinned:.1f} | "
              f"{pinned / native:.2f} |")
    print(f"wrote {results.relative_to(REPO)}")


def cpu_model() -> str:
    from distillery.numerics import cpu_flags

    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")] if Path("/proc/cpuinfo").is_file() else []
    return (names[0] if names else platform.processor() or "unknown CPU") + \
        (" with AVX-512" if "avx512f" in (cpu_flags() or set()) else "")


if __name__ == "__main__":
    main()
