"""End to end with DVC: changing only data.transfer re-scores only the transfer set; kd.* re-scores nothing."""
from __future__ import annotations

import json

import pytest

from ..conftest import TINY
from ..repo_utils import copy_repo, reproduced, run, stages_run


def ran(result) -> set[str]:
    return stages_run(result.stdout)


@pytest.mark.slow
def test_changing_only_the_transfer_set_reruns_only_the_transfer_stages_and_the_student(tmp_path):
    repo = reproduced(copy_repo(tmp_path, TINY))
    before = json.loads((repo / "reports/metrics.json").read_text())
    result = run(["dvc", "exp", "run", "-S", "data.transfer.augment=1"], repo)
    # prepare re-runs (data.transfer is inside its `data` params) with byte-identical output: DVC skips the rest
    assert ran(result) <= {"prepare", "transfer", "transfer_logits", "distill", "evaluate", "plots"}, result.stdout
    assert {"transfer", "transfer_logits", "distill"} <= ran(result), result.stdout
    after = json.loads((repo / "reports/metrics.json").read_text())
    assert after["teacher"] == before["teacher"] and after["hard"] == before["hard"]
    assert after["kd"] != before["kd"]
    summary = json.loads((repo / "data/transfer_logits/summary.json").read_text())
    assert summary["rows"] == summary["origins"]["augment"] > 1000
    result = run(["dvc", "exp", "run", "-S", "kd.T=2"], repo)
    assert ran(result) == {"distill", "evaluate", "plots"}, result.stdout
    assert "setting" in (repo / "reports/report.md").read_text().lower()
