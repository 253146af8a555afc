"""Wall time of each stage of `dvc repro` on the default params, in a fresh copy of the repo, and of the
everyday loop: `dvc exp run -S kd.T=2` after the full pipeline (`--loops N`: N times, kd.T = 2, 3, 5, ..., each a
real change; the median is its row, every run is in the raw results).

Run: `make bench` (or `python bench/pipeline_time.py`). `--base REV` also times a fresh copy of git revision
REV, stage by stage interleaved with the working tree's (REV's stage, then ours, ...), so both see the same
machine load: read the ratios. Also times a bare `import torch` and `from transformers import Trainer` in fresh
processes, start to exit, the fixed cost every stage that needs them pays; the same with the objects frozen before
exit and with torchao hidden from `transformers` (`--imports-only`: these rows alone). Raw results:
bench/results/pipeline_time.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
LOOP = ["dvc", "exp", "run", "-S", "kd.T=2"]  # the change a person tries first
LOOP_TEMPERATURES = (2, 3, 5, 6, 7, 8, 9)  # --loops N: the loop N times, each a real change (the default T is 4)
RESULTS = REPO / "bench/results/pipeline_time.json"
TRAINER = "from transformers import Trainer"
IMPORT_PROBES = {  # what a stage pays in a fresh process before any work, and at its exit
    "import torch": "import torch",
    TRAINER: TRAINER,
    f"{TRAINER}, objects frozen before exit, as run_stage does": f"{TRAINER}; import gc; gc.freeze()",
    f"{TRAINER}, torchao hidden from transformers": "import transformers.utils as u, transformers.utils.import_utils "
    f"as i; i.is_torchao_available = u.is_torchao_available = lambda *a, **k: False; {TRAINER}",
}


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env={**ENV, "PYTHONPATH": str(cwd)}, check=True, capture_output=True)
    return time.perf_counter() - start


def git_repo(work: Path) -> Path:
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b",
                                                              "commit", "-qm", "b"]):
        subprocess.run(cmd, cwd=work, check=True)
    return work


def copy_worktree(work: Path) -> Path:
    """The tracked files of this working tree (uncommitted edits included; no outputs, no cache)."""
    for name in subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split():
        if (REPO / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    return git_repo(work)


@contextlib.contextmanager
def fresh_copy():
    """A temporary git repo holding the tracked files of this working tree (``copy_worktree``), removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        yield copy_worktree(Path(tmp))


def copy_revision(rev: str, work: Path) -> Path:
    """The files of git revision ``rev`` (``git archive``)."""
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(work, filter="data")
    return git_repo(work)


def python_in(code: Path, script: str, *args) -> dict:
    """``python -c script args`` importing the distillery of the tree at ``code`` (run there: ``python -c`` puts the
    working directory first on sys.path, before PYTHONPATH), its last line of output read as JSON."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=code,
                          env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the script in {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def head_commit() -> str:
    """The short hash of the commit the benches run (a bench's result names it)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()


def save(result: dict) -> None:
    """Write the raw results so far (after every timing: a run cut short keeps what it measured)."""
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def stage_times(copies: dict[str, Path], result: dict, loops: int) -> dict[str, dict[str, float]]:
    """Each stage forced on its own (dvc.yaml order), the copies taking turns; then the everyday loop ``loops``
    times (kd.T = 2, 3, 5, ...), the copies taking turns, its median as the loop's row."""
    stages = list(yaml.safe_load((next(iter(copies.values())) / "dvc.yaml").read_text())["stages"])
    stages = [s for s in stages if s not in ("extra_teacher", "extra_teacher_logits")]  # foreach over {}: none
    times: dict[str, dict[str, float]] = result.setdefault("seconds", {name: {} for name in copies})
    for stage in stages:
        for name, work in copies.items():
            times[name][stage] = timed(["dvc", "repro", "--force", "--single-item", "--no-run-cache", stage], work)
            print(f"{name} {stage}: {times[name][stage]:.1f} s", flush=True)
            save(result)
    loop_runs: dict[str, list[float]] = result.setdefault("loop_runs", {name: [] for name in copies})
    for T in LOOP_TEMPERATURES[:loops]:
        for name, work in copies.items():
            loop_runs[name].append(timed([*LOOP[:-1], f"kd.T={T}"], work))
            print(f"{name} dvc exp run -S kd.T={T}: {loop_runs[name][-1]:.1f} s", flush=True)
            save(result)
    for name in copies:
        runs = sorted(loop_runs[name])
        times[name][" ".join(LOOP) + (f" (median of {loops}: kd.T = 2, 3, ...)" if loops > 1 else "")] = \
            runs[len(runs) // 2]
    return times


def import_times(work: Path, repeats: int = 3) -> dict[str, float]:
    """Each of ``IMPORT_PROBES`` in a fresh process, start to exit: the median of ``repeats``."""
    return {what: sorted(timed([sys.executable, "-c", code], work) for _ in range(repeats))[repeats // 2]
            for what, code in IMPORT_PROBES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a git revision to time side by side with the working tree, e.g. main")
    parser.add_argument("--imports-only", action="store_true", help="only the fresh-process import rows")
    parser.add_argument("--loops", type=int, default=3, choices=range(1, len(LOOP_TEMPERATURES) + 1),
                        metavar=f"1..{len(LOOP_TEMPERATURES)}", help="how many times to time the everyday loop "
                        "(each with another kd.T; the median is reported; default 3)")
    args = parser.parse_args()
    if args.imports_only:
        for what, seconds in import_times(REPO).items():
            print(f"| fresh process: `{what}` | {seconds:.2f} |")
        return
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/pipeline_time.py", *sys.argv[1:]]),
              "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), load average {os.getloadavg()[0]:.1f} at the start"}
    with contextlib.ExitStack() as stack:
        copies = {}
        if args.base:
            copies[f"base ({args.base})"] = copy_revision(args.base, Path(stack.enter_context(tempfile.TemporaryDirectory())))
        copies["this tree"] = copy_worktree(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        times = stage_times(copies, result, args.loops)
        work = copies["this tree"]
        imports = import_times(work)
    names = list(times)
    result["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
    print(f"{result['machine']}, python {sys.version.split()[0]}")
    print("| stage | " + " | ".join(f"{n} (s)" for n in names) + (" | ratio |" if len(names) == 2 else " |"))
    print("|---|" + "---|" * (len(names) + (len(names) == 2)))
    steps = list(times[names[-1]])
    rows = [*steps[:-1], "**sum of stages**", steps[-1]]
    for row in rows:
        values = [sum(t[s] for s in steps[:-1]) if row == "**sum of stages**" else t[row] for t in times.values()]
        ratio = f" | {values[1] / values[0]:.2f}" if len(values) == 2 else ""
        print(f"| {row if row.startswith('**') else f'`{row}`'} | " + " | ".join(f"{v:.1f}" for v in values) + f"{ratio} |")
    for what, seconds in imports.items():
        print(f"| fresh process: `{what}` | {seconds:.1f} |")
    save(result | {"imports": imports})
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
