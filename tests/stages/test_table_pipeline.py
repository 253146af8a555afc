"""End to end with the user's own table in the repo (a CSV that git does not track): a change of its scaling trains
new hard students (never the runs kept from the old features), an edited file re-runs prepare under plain
`dvc repro` (the sources stage's digest), and `make export` says what the commit does not hold; an experiment in a copy of the repo without the edited file is
refused, and a file gone is said."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from ..conftest import TINY, deep_merge
from ..repo_utils import MAKE, copy_repo, git_commit, reproduced, run, stages_run

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)

TABLE = {"data": {"source": "file:wine.csv", "feature_columns": "all", "label_column": "cultivar",
                  "label_names": ["barbera", "barolo", "grignolino"], "id_column": "wine_id", "scaling": "standard"},
         "train": {"seeds": [0], "max_steps": 60, "eval_steps": 20, "save_steps": 20}}


def write_wine(path, scale_alcohol: float = 1.0) -> None:
    wine = load_wine(as_frame=True)
    table = wine.data.assign(alcohol=wine.data["alcohol"] * scale_alcohol)
    table.insert(0, "wine_id", np.arange(100, 100 + len(table)))
    table["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[wine.target]
    table.to_csv(path, index=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("table"), deep_merge(TINY, TABLE))
    write_wine(repo / "wine.csv")  # the user's file: in the repo, never committed
    with open(repo / ".git/info/exclude", "a") as exclude:
        exclude.write("wine.csv\n")
    return reproduced(repo)


def metrics(repo) -> dict:
    return json.loads((repo / "reports/metrics.json").read_text())


def test_another_scaling_of_the_same_rows_trains_new_hard_students(repo):
    before = metrics(repo)
    assert before["hard"]["accuracy"] > 0.8 and before["teacher"]["accuracy"] > 0.8
    git_commit(repo, "standardized")
    result = run(["dvc", "exp", "run", "-S", "data.scaling=minmax"], repo)
    assert "reusing" not in result.stdout + result.stderr  # the runs kept for the standardized rows are not theirs
    after = metrics(repo)
    assert after["hard"]["accuracy"] > 0.8, after["hard"]  # a kept run on the old features scored ~0.4 here
    record = json.loads((repo / "models/students/hard/seed_0/inputs.json").read_text())
    assert record["scaling"]["scaler"] == "minmax"


def test_an_edited_data_file_reruns_prepare_under_dvc_repro_and_export_says_what_the_commit_lacks(repo):
    run(["dvc", "exp", "run", "-S", "data.scaling=standard"], repo)  # back to the commit's params
    git_commit(repo, "standardized again")
    prepared = (repo / "data/prepared/meta.json").read_text()
    write_wine(repo / "wine.csv", scale_alcohol=10.0)

    refused = run([*MAKE, "export"], repo, check=False)  # before any repro: the stages' own records say so
    assert refused.returncode != 0
    assert "prepare: wine.csv changed (sha256 " in refused.stderr and "`dvc repro` runs those stages again" in \
        refused.stderr
    assert not (repo / "export").exists()

    result = run(["dvc", "repro"], repo)  # plain DVC: the sources stage's digest of wine.csv is prepare's dep
    assert "wine.csv changed (sha256 " in result.stdout and "prepare runs again" in result.stdout, result.stdout
    assert {"prepare", "teacher", "distill", "hard_baseline"} <= stages_run(result.stdout), result.stdout
    assert (repo / "data/prepared/meta.json").read_text() != prepared
    record = json.loads((repo / "data/prepared/meta.json").read_text())["source_files"]["wine.csv"]
    assert record["bytes"] == (repo / "wine.csv").stat().st_size
    assert json.loads((repo / "data/sources/prepare.json").read_text()) == {"wine.csv": record["sha256"]}
    assert stages_run(run([*MAKE, "repro"], repo).stdout) == set()  # current again

    run([*MAKE, "export"], repo)
    card = (repo / "export/kd/README.md").read_text()
    assert "trains `models/students/kd/seed_0`, these files, again, given the same files (below)," in card
    assert "data/sources" not in card  # its new digest of wine.csv: the file itself is listed, not the record
    assert f"`wine.csv`, {record['bytes']:,} bytes, sha256 `{record['sha256']}`, **not in the commit**" in card
    exported = json.loads((repo / "export/kd/distillation.json").read_text())
    assert exported["data_files"]["wine.csv"] == {**record, "in_commit": False}
    scaled = pd.read_csv(repo / "wine.csv")["alcohol"]
    assert scaled.min() > 100  # the file the card names is the edited one


def test_an_experiment_in_a_copy_without_the_edited_file_is_refused_and_a_gone_file_is_said(repo):
    """A queued or ``--temp`` experiment runs in a copy of the repo that lacks the untracked wine.csv: it used to
    keep the old digest, and so the old data, without a word."""
    write_wine(repo / "wine.csv", scale_alcohol=2.0)  # edited, the workspace not reproduced since
    refused = run(["dvc", "exp", "run", "--temp", "-S", "kd.T=3"], repo, check=False)
    assert refused.returncode != 0
    assert ("this experiment runs in a copy of the repo that lacks files the workspace holds, and they changed since "
            "the workspace's last `dvc repro`: wine.csv (data.source; sha256 ") in refused.stdout + refused.stderr
    write_wine(repo / "wine.csv", scale_alcohol=10.0)  # as the workspace's last repro read it

    (repo / "wine.csv").rename(repo / "moved.csv")
    try:
        result = run(["dvc", "repro"], repo)
        assert "warning: wine.csv (data.source) is gone: prepare keeps its outputs" in result.stdout, result.stdout
        assert stages_run(result.stdout) == set()
        refused = run([*MAKE, "export"], repo, check=False)
        assert refused.returncode != 0 and "prepare: wine.csv is gone" in refused.stderr
        assert "(a file that is gone: put it back, or point its param at where it is now)" in refused.stderr
    finally:
        (repo / "moved.csv").rename(repo / "wine.csv")
