"""The one training path: TrainingArguments from params, and what the Trainer hands a method's loss."""
import torch

from distillery.methods import HARD
from distillery.models.zoo import build_model
from distillery.params import validate
from distillery.training.trainer import TensorDictDataset, train_model


def test_full_determinism_param_turns_on_deterministic_algorithms(tmp_path, monkeypatch):
    calls = []  # record the calls, leave torch's global state alone
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, **kwargs: calls.append(mode))
    data = TensorDictDataset(features=torch.rand(8, 4), labels=torch.tensor([0, 1] * 4))
    for flag in (False, True):
        params = validate({})["train"] | {"max_steps": 2, "full_determinism": flag}
        train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"]), data, data, params,
                    seed=0, method=HARD, checkpoint_dir=tmp_path / str(flag))
    assert calls == [True]  # only the run with full_determinism: true asked for deterministic kernels
