"""The transfer and transfer_logits stage scripts: what they write, and bad input refused with nothing written."""
from __future__ import annotations

import json

import pytest
import yaml

from distillery.io import read_logits
from distillery.data.prepared import save_prepared

from ..conftest import TINY, deep_merge
from ..conftest import REPO
from .test_stages import files_under


def run_stage_script(stage: str, capsys) -> tuple[int, str]:
    """Run ``stages/<stage>.py`` as ``__main__`` in this process: its exit status (0 when it returns) and stderr."""
    import runpy
    import sys

    saved, sys.argv = sys.argv, [f"stages/{stage}.py"]
    code = 0
    try:
        runpy.run_path(str(REPO / "stages" / f"{stage}.py"), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = saved
    return code, capsys.readouterr().err


@pytest.fixture
def repo(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(deep_merge(TINY, {"data": {"transfer": {"augment": 1}}})))
    save_prepared(digits, tmp_path / "data/prepared")
    return tmp_path


def save_teacher(path, label_names, digits):
    from distillery.models.zoo import build_model

    build_model({"arch": "mlp", "hidden_sizes": [4], "dropout": 0.0}, digits.input_shape, label_names) \
        .save_pretrained(path)


def test_transfer_then_transfer_logits_score_each_row_once(repo, digits, capsys):
    code, err = run_stage_script("transfer", capsys)
    assert code == 0, err
    save_teacher(repo / "models/teacher", digits.label_names, digits)
    code, err = run_stage_script("transfer_logits", capsys)
    assert code == 0, err
    meta = json.loads((repo / "data/transfer/meta.json").read_text())
    n = len(digits.splits["train"].ids)
    assert meta["rows"] == n and meta["counts"]["augment"] == n
    from distillery.data.transfer import load_transfer

    transfer = load_transfer(repo / "data/transfer")
    logits = read_logits(repo / "data/transfer_logits/transfer.parquet", transfer.ids, 10)
    assert logits.shape == (n, 10)
    summary = json.loads((repo / "data/transfer_logits/summary.json").read_text())
    assert summary["labelled_rows"] == n and 0 <= summary["agreement"] <= 1  # augmented rows: their image's label


def test_a_teacher_of_another_label_count_is_refused_nothing_written(repo, digits, capsys):
    code, err = run_stage_script("transfer", capsys)
    assert code == 0, err
    save_teacher(repo / "models/teacher", ["a", "b", "c"], digits)
    capsys.readouterr()
    before = files_under(repo)
    code, err = run_stage_script("transfer_logits", capsys)
    assert code == 2
    assert "error: data.transfer: the teacher has 3 output classes but the data has 10 labels" in err
    assert files_under(repo) == before


def test_empty_rest_is_refused_by_the_transfer_stage_nothing_written(repo, capsys):
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_merge(TINY, {"data": {"transfer": {"augment": -2}}})))
    before = files_under(repo)
    code, err = run_stage_script("transfer", capsys)
    assert code == 2 and err == "error: params.yaml: data.transfer.augment = -2: must be >= 0\n"
    assert files_under(repo) == before


def test_off_writes_an_empty_transfer_set_and_scores_nothing(repo, capsys):
    (repo / "params.yaml").write_text(yaml.safe_dump(TINY))
    assert run_stage_script("transfer", capsys)[0] == 0
    assert run_stage_script("transfer_logits", capsys)[0] == 0  # no teacher needed: nothing to score
    assert json.loads((repo / "data/transfer_logits/summary.json").read_text())["rows"] == 0
    import pyarrow.parquet as pq

    assert pq.read_table(repo / "data/transfer_logits/transfer.parquet").num_rows == 0
