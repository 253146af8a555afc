"""The run lifecycle: which checkpoint is used after a crash, and how DVCLive curves are cut back to it."""
import json

import pandas as pd

from distillery.runs import last_complete_checkpoint, truncate_curves


def checkpoint(root, step, state=True, broken=False):
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text('{"global_st' if broken else json.dumps({"global_step": step}))
    return path


def test_newest_complete_checkpoint_is_used_and_incomplete_ones_removed(tmp_path):
    assert last_complete_checkpoint(tmp_path / "nothing") is None
    good = checkpoint(tmp_path, 20)
    checkpoint(tmp_path, 40, state=False)  # killed before trainer_state.json was written
    checkpoint(tmp_path, 60, broken=True)  # killed while writing it
    assert last_complete_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-20"]


def test_curves_are_cut_back_to_the_resumed_step(tmp_path):
    metrics = tmp_path / "plots/metrics"
    (metrics / "eval").mkdir(parents=True)
    pd.DataFrame({"step": [10, 20, 30], "loss": [3.0, 2.0, 1.0]}).to_csv(metrics / "loss.tsv", sep="\t", index=False)
    pd.DataFrame({"step": [20], "accuracy": [0.5]}).to_csv(metrics / "eval/accuracy.tsv", sep="\t", index=False)
    truncate_curves(tmp_path, 20)
    assert pd.read_csv(metrics / "loss.tsv", sep="\t").to_dict("list") == {"step": [10, 20], "loss": [3.0, 2.0]}
    assert pd.read_csv(metrics / "eval/accuracy.tsv", sep="\t").to_dict("list") == {"step": [20], "accuracy": [0.5]}
