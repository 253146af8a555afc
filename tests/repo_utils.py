"""Fresh git copies of this repo and subprocesses that import ``distillery`` from them (slow tests)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO, deep_merge

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
# `make TARGET` with the running interpreter's environment; -o: never re-run `make setup` here.
MAKE = ["make", "--no-print-directory", f"VENV={BIN.parent}", "-o", f"{BIN.parent}/.installed"]


def run(cmd: list[str], cwd: Path, check=True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` (environment ``env``, default ``ENV``) importing ``distillery`` from ``cwd``
    (not from wherever it is installed)."""
    result = subprocess.run(cmd, cwd=cwd, env={**(env or ENV), "PYTHONPATH": str(cwd)}, capture_output=True,
                            text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


ALWAYS_RUNS = "sources"  # dvc.yaml's always_changed stage: it hashes the files params.yaml names on every run


def stages_run(output: str) -> set[str]:
    """The stages a ``dvc repro`` or ``dvc exp run`` output says it ran, but ``ALWAYS_RUNS``."""
    return set(re.findall(r"^Running stage '([^']+)'", output, re.MULTILINE)) - {ALWAYS_RUNS}


def dvc_status(repo: Path, env: dict | None = None) -> dict:
    """``dvc status --json`` of ``repo``, less ``ALWAYS_RUNS``, which it always lists as changed (checked)."""
    status = json.loads(run(["dvc", "status", "--json"], repo, env=env).stdout or "{}")
    assert status.pop(ALWAYS_RUNS, None) == ["always changed"], status
    return status


def git_commit(repo: Path, message: str, *paths: str) -> None:
    """``git add PATHS`` (all when none) and commit in ``repo``."""
    run(["git", "add", *(paths or ["-A"])], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def copy_repo(dest: Path, params_override: dict) -> Path:
    """The tracked files of this repo in a fresh git repo, with ``params_override`` merged into params.yaml."""
    files = run(["git", "ls-files"], REPO).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("reports/", "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(deep_merge(params, params_override), sort_keys=False))
    run(["git", "init", "-q"], dest)
    git_commit(dest, "init")
    return dest


def reproduced(repo: Path) -> Path:
    """``repo`` after ``dvc repro``, its output kept in ``repo/repro.log`` for the tests that read it."""
    result = run(["dvc", "repro"], repo)
    (repo / "repro.log").write_text(result.stdout + result.stderr)
    return repo
