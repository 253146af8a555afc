"""Safe loading: safetensors only; a directory holding only pickled weights is refused before unpickling."""
import re

import pytest
import torch

from distillery.errors import DistilleryError
from distillery.models import build_model, load_model
from distillery.teacher import check_checkpoint


def pickle_only_model(path):
    model = build_model({"arch": "mlp", "hidden_sizes": [4]}, [8, 8], [str(i) for i in range(10)])
    model.config.save_pretrained(path)
    torch.save(model.state_dict(), path / "pytorch_model.bin")


def test_safetensors_round_trip(tmp_path):
    model = build_model({"arch": "mlp", "hidden_sizes": [4]}, [8, 8], ["a", "b"])
    model.save_pretrained(tmp_path / "m")
    assert [p.name for p in (tmp_path / "m").glob("*.safetensors")] == ["model.safetensors"]
    loaded = load_model(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_pickle_only_directory_is_refused(tmp_path, monkeypatch):
    pickle_only_model(tmp_path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not be reached"))
    message = f"{tmp_path}: no .safetensors weights; it has only pickle weights (pytorch_model.bin)"
    with pytest.raises(DistilleryError, match=re.escape(message)):
        load_model(tmp_path)


def test_pickle_only_teacher_checkpoint_is_refused_before_work(tmp_path, digits):
    pickle_only_model(tmp_path)
    with pytest.raises(DistilleryError, match="only pickle weights"):
        check_checkpoint(str(tmp_path), digits)


def test_trust_remote_code_is_off_by_default():
    from distillery.params import validate

    assert validate({})["teacher"]["trust_remote_code"] is False
