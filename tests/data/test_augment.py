"""Image jitter: the transfer set's shifts and the teacher's on-the-fly batch jitter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from distillery.data.augment import Jittered, check_jitter, jitter_batch, shift_image
from distillery.errors import DistilleryError
from distillery.models.zoo import load_model
from distillery.training.teacher import build_teacher
from distillery.training.trainer import TensorDictDataset, collate

from ..conftest import make_params


def test_shift_image_by_hand():
    image = np.arange(1, 10).reshape(3, 3)
    assert shift_image(image, 1, 0).tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert shift_image(image, 0, -1).tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]
    assert shift_image(image, -1, 1).tolist() == [[0, 4, 5], [0, 7, 8], [0, 0, 0]]


def test_jitter_batch_shifts_each_image_within_the_range():
    torch.manual_seed(0)
    images = torch.rand(400, 2, 7, 7) + 1  # no zeros, so a shift is identified by where the zero fill is
    out = jitter_batch(images, 2)
    assert out.shape == images.shape
    seen = set()
    for image, moved in zip(images.numpy(), out.numpy()):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(moved, shift_image(image, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 25  # every shift in [-2, 2]^2 is drawn, (0, 0) included


def test_jitter_batch_follows_the_torch_seed():
    images = torch.rand(64, 8, 8)
    torch.manual_seed(3)
    a = jitter_batch(images, 1)
    torch.manual_seed(3)
    assert torch.equal(a, jitter_batch(images, 1))
    assert not torch.equal(a, jitter_batch(images, 1))


def test_jittered_dataset_shifts_only_the_features_of_its_batches_and_rows():
    data = Jittered(TensorDictDataset(features=torch.ones(8, 4, 4), labels=torch.arange(8)), 1)
    torch.manual_seed(0)
    batch = data.__getitems__(list(range(8)))
    assert batch["labels"].tolist() == list(range(8))
    assert batch["features"].shape == (8, 4, 4)
    assert (batch["features"].sum((1, 2)) < 16).any()  # some rows shifted: zero fill came in
    row = data[3]
    assert row["labels"] == 3 and row["features"].shape == (4, 4) and len(data) == 8


def test_teacher_jitter_leaves_validation_images_as_they_are(digits, tmp_path, monkeypatch):
    """Early stopping scores the validation images unshifted: the Trainer's collator serves evaluation too."""
    import distillery.training.trainer as training

    seen = []
    original = training.train_model

    def spy(model, train_data, eval_data, *args, **kwargs):
        seen.append((train_data, eval_data, kwargs.get("data_collator")))
        return original(model, train_data, eval_data, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", spy)
    monkeypatch.chdir(tmp_path)
    build_teacher(make_params(teacher={"train": {"jitter": 1, "max_steps": 20, "eval_steps": 20}}), digits,
                  Path("teacher"))
    (train_data, eval_data, collator), = seen
    assert isinstance(train_data, Jittered) and not isinstance(eval_data, Jittered)
    assert collator in (None, collate)


def test_check_jitter_refuses_non_images():
    check_jitter(2, [8, 8], "teacher.train")
    check_jitter(0, [64], "teacher.train")
    with pytest.raises(DistilleryError, match=r"teacher.train.jitter = 2: jitter shifts images; the inputs have shape \[64\]"):
        check_jitter(2, [64], "teacher.train")


def test_params_refuse_jitter_for_a_text_teacher():
    with pytest.raises(DistilleryError, match="teacher.train.jitter = 2: jitter shifts images; teacher.model.arch is hf"):
        make_params(teacher={"model": {"arch": "hf", "pretrained": "x"}, "train": {"jitter": 2}})
    with pytest.raises(DistilleryError, match="teacher.train.jitter"):
        make_params(teacher={"train": {"jitter": -1}})


def test_teacher_trains_with_jitter_reproducibly(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def teacher(jitter: int, name: str) -> dict:
        build_teacher(make_params(teacher={"train": {"jitter": jitter}}), digits, Path(name))
        return load_model(Path(name)).state_dict()

    plain, jittered, again = teacher(0, "plain"), teacher(1, "jittered"), teacher(1, "again")
    assert all(torch.equal(jittered[k], again[k]) for k in jittered)
    assert not all(torch.equal(plain[k], jittered[k]) for k in plain)


def test_jitter_batch_draws_as_the_loop_over_images_did():
    """The vectorised shift equals shifting image by image with the same draws (so seeded runs keep their bits)."""
    images = torch.rand(50, 3, 6, 5)
    torch.manual_seed(7)
    out = jitter_batch(images, 2)
    torch.manual_seed(7)
    dy, dx = torch.randint(-2, 3, (2, 50)).tolist()
    expected = np.stack([shift_image(image, y, x) for image, y, x in zip(images.numpy(), dy, dx)])
    assert np.array_equal(out.numpy(), expected)
    torch.manual_seed(7)
    assert torch.equal(jitter_batch(images[:, 0], 2), out[:, 0])  # (N, H, W) images: the same shifts
