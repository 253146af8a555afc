"""Resuming: which checkpoint is used after a crash, and how DVCLive curves are cut back to it."""
import json

import pandas as pd

from distillery.training import last_complete_checkpoint, truncate_curves


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


def test_full_determinism_param_turns_on_deterministic_algorithms(tmp_path, monkeypatch):
    import torch

    from distillery.losses import hard_terms
    from distillery.models import build_model
    from distillery.params import validate
    from distillery.training import TensorDictDataset, train_model

    calls = []  # record the calls, leave torch's global state alone
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, **kwargs: calls.append(mode))
    data = TensorDictDataset(features=torch.rand(8, 4), labels=torch.tensor([0, 1] * 4))
    for flag in (False, True):
        params = validate({})["train"] | {"max_steps": 2, "full_determinism": flag}
        train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"]), data, data, params,
                    seed=0, loss_fn=hard_terms, checkpoint_dir=tmp_path / str(flag))
    assert calls == [True]  # only the run with full_determinism: true asked for deterministic kernels
