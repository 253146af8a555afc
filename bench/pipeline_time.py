"""Wall time of each stage of `dvc repro` on the default params, in a fresh copy of the repo.

Run: `make bench` (or `python bench/pipeline_time.py`). Also times a bare `import torch` and
`from transformers import Trainer` in fresh processes, the fixed cost every torch stage pays.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env={**ENV, "PYTHONPATH": str(cwd)}, check=True, capture_output=True)
    return time.perf_counter() - start


@contextlib.contextmanager
def fresh_copy():
    """A temporary git repo holding the tracked files of this one (no outputs, no cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split():
            if (REPO / name).is_file():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, work / name)
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"]):
            subprocess.run(cmd, cwd=work, check=True)
        yield work


def main() -> None:
    with fresh_copy() as work:
        stages = list(yaml.safe_load((work / "dvc.yaml").read_text())["stages"])
        rows = [(s, timed(["dvc", "repro", "--force", "--single-item", "--no-run-cache", s], work)) for s in stages]
        total = timed(["dvc", "repro", "--force", "--no-run-cache"], work)
        imports = {
            "import torch": timed([sys.executable, "-c", "import torch"], work),
            "from transformers import Trainer": timed([sys.executable, "-c", "from transformers import Trainer"], work),
        }
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print("| stage | seconds |\n|---|---|")
    for stage, seconds in rows:
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| **sum of stages** | {sum(s for _, s in rows):.1f} |")
    print(f"| **`dvc repro --force` (whole pipeline)** | {total:.1f} |")
    for what, seconds in imports.items():
        print(f"| fresh process: `{what}` | {seconds:.1f} |")


if __name__ == "__main__":
    main()
