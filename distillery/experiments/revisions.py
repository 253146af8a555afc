"""A revision's committed files, and what the workspace's results are against its own commit: for comparing a change
with a revision (``make diff``)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ..errors import DistilleryError

ALWAYS_CHANGED = "always changed"  # dvc status of a stage that runs on every `dvc repro` (the sources stage)
MISSING_OUTPUT = {"deleted", "not in cache"}  # an output not pulled or not checked out: the results may be current


def commit_of(rev: str) -> str:
    """The commit ``rev`` names: a branch, tag or commit, or a DVC experiment's name."""
    from dvc.scm import SCM, RevError, resolve_rev

    try:
        return resolve_rev(SCM("."), rev)
    except RevError:
        raise DistilleryError(f"REV = {rev!r}: no such git revision or DVC experiment (see `git log`, "
                              "`git branch -a` and `dvc exp list`)") from None


def file_at(commit: str, path: str) -> str | None:
    """The text of ``path`` as committed at ``commit`` (``commit_of``); None when that commit has no such file."""
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def _stale(change) -> bool:
    """Whether one entry of a stage's ``dvc status`` makes its committed results another setting's: a changed
    dependency, command or hand-edited output; not the stage that always runs, nor an output merely absent."""
    if change == ALWAYS_CHANGED:
        return False
    if isinstance(change, dict) and set(change) == {"changed outs"}:
        return not set(change["changed outs"].values()) <= MISSING_OUTPUT
    return True


def stale_stages() -> dict[str, list]:
    """The stages ``dvc status`` finds out of date with their params, code or data (stage -> its status entries)."""
    done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DistilleryError(f"`dvc status --json` failed:\n{done.stderr.strip() or done.stdout.strip()}")
    status = json.loads(done.stdout or "{}")
    return {stage: changes for stage, changes in status.items() if any(map(_stale, changes))}


def changed_params(stale: dict[str, list]) -> list[str]:
    """What the stale stages' status names as changed, in words: ``params.yaml: kd``, ``distillery/x.py``."""
    named = []
    for changes in stale.values():
        for change in changes:
            for path, state in (change.get("changed deps", {}) if isinstance(change, dict) else {}).items():
                keys = f": {', '.join(sorted(state))}" if isinstance(state, dict) else ""
                if f"{path}{keys}" not in named:
                    named.append(f"{path}{keys}")
    return named


def uncommitted_results(root: Path = Path(".")) -> list[str]:
    """``dvc.lock`` and the stage outputs git tracks (metrics, report, plots) where they differ from the commit
    checked out: results made since the last commit (``make repro``, ``dvc exp run``) and not committed."""
    import yaml

    lock_path = root / "dvc.lock"
    lock = (yaml.safe_load(lock_path.read_text()) or {}) if lock_path.exists() else {}
    outs = [out["path"] for stage in (lock.get("stages") or {}).values() for out in stage.get("outs", [])]
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--no-renames", "-z"], cwd=root,
                          capture_output=True, text=True, check=True)
    changed = [entry[3:] for entry in done.stdout.split("\0") if entry]
    return [path for path in changed
            if path == "dvc.lock" or any(path == out or path.startswith(out.rstrip("/") + "/") for out in outs)]
