"""The committed results are what the committed code and params make, on this CPU too: a fresh copy's `dvc repro`
re-makes every output and leaves `git status` clean (README, "Two commands"; docs/reproducibility.md)."""
from __future__ import annotations

import shutil

import pytest

from distillery.errors import DistilleryError
from distillery.numerics import environment, is_x86, level_in

from ..conftest import REPO
from ..repo_utils import dvc_status, git_commit, run, stages_run

pytestmark = pytest.mark.slow  # the default pipeline at its full budget (about a minute on two cores)


def require_portable_bits() -> None:
    """Skip where the committed bits are not promised: the project runs its CPU's own kernels, or this CPU cannot
    run the pinned ones."""
    level = level_in(REPO / "params.yaml")
    if level == "native":
        pytest.skip("reproducible_cpu: native: the committed results are the bits of the CPU that made them")
    if not is_x86():
        pytest.skip("not an x86-64 CPU: nothing is pinned here, so its bits are its own")
    try:
        environment(level)
    except DistilleryError as error:
        pytest.skip(str(error))


def test_a_fresh_copy_s_dvc_repro_remakes_the_committed_results(tmp_path):
    require_portable_bits()
    for name in run(["git", "ls-files"], REPO).stdout.split():  # the tracked files as they are: reports, dvc.lock
        if (REPO / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tmp_path / name)
    run(["git", "init", "-q"], tmp_path)
    git_commit(tmp_path, "the committed results")

    result = run(["dvc", "repro"], tmp_path)

    ran = stages_run(result.stdout)
    assert {"prepare", "teacher", "teacher_logits", "distill", "hard_baseline", "evaluate"} <= ran, result.stdout
    changed = run(["git", "status", "--porcelain"], tmp_path).stdout
    diff = run(["git", "diff", "--", "reports/metrics.json", "dvc.lock"], tmp_path).stdout
    assert not changed, (f"`dvc repro` changed committed files: the code or params changed without `dvc repro` "
                         f"and a commit of what it wrote, or this CPU gives other bits:\n{changed}\n{diff[:6000]}")
    assert dvc_status(tmp_path) == {}
