"""Models: build, safetensors round trip, and safe loading (pickle-only weights refused before unpickling)."""
import re

import pytest
import torch

from distillery.errors import DistilleryError
from distillery.models.zoo import build_model, count_parameters, hide_loading_bars, load_model
from distillery.models.text import check_checkpoint_head

LABELS = [str(i) for i in range(10)]


@pytest.mark.parametrize(
    "spec, params",
    [
        ({"arch": "mlp", "hidden_sizes": [16], "dropout": 0.0}, 64 * 16 + 16 + 16 * 10 + 10),
        ({"arch": "mlp", "hidden_sizes": [256, 256]}, 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10),
        # conv 1->4 (3x3): 40; 8x8 -> 4x4 after pool; dense 4*4*4=64 -> 8: 520; 8 -> 10: 90
        ({"arch": "cnn", "channels": [4], "hidden_size": 8}, 40 + 520 + 90),
    ],
)
def test_build_save_load_round_trip(tmp_path, spec, params):
    model = build_model(spec, [8, 8], LABELS).eval()
    assert count_parameters(model) == params
    x = torch.rand(5, 8, 8)
    expected = model(features=x).logits
    assert expected.shape == (5, 10)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config.id2label[3] == "3"
    torch.testing.assert_close(loaded(features=x).logits, expected, rtol=0, atol=0)


def test_labels_give_cross_entropy_loss():
    model = build_model({"arch": "mlp", "hidden_sizes": [4]}, [64], LABELS)
    x, y = torch.rand(3, 64), torch.tensor([1, 2, 3])
    out = model(features=x, labels=y)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, y))


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_train_and_eval_set_every_submodule(arch):
    model = build_model({"arch": arch, "hidden_sizes": [4], "dropout": 0.5}, [8, 8], LABELS)
    modes = lambda: {module.training for module in model.modules()}  # noqa: E731
    assert model.train() is model and modes() == {True}
    assert model.train() is model and modes() == {True}  # already training: returned at once
    assert model.eval() is model and modes() == {False}
    model.train()
    model.net[-1].eval()  # one submodule out of step: train() sets it again
    model.train()
    assert modes() == {True}


def test_same_seed_same_init():
    from transformers import set_seed

    set_seed(7)
    a = build_model({"arch": "mlp", "hidden_sizes": [16]}, [64], LABELS)
    set_seed(7)
    b = build_model({"arch": "mlp", "hidden_sizes": [16]}, [64], LABELS)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka


def pickle_only_model(path):
    model = build_model({"arch": "mlp", "hidden_sizes": [4]}, [8, 8], [str(i) for i in range(10)])
    model.config.save_pretrained(path)
    torch.save(model.state_dict(), path / "pytorch_model.bin")


def test_pickle_only_directory_is_refused(tmp_path, monkeypatch):
    pickle_only_model(tmp_path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not be reached"))
    message = f"{tmp_path}: no .safetensors weights; it has only pickle weights (pytorch_model.bin)"
    with pytest.raises(DistilleryError, match=re.escape(message)):
        load_model(tmp_path)


def test_pickle_only_teacher_checkpoint_is_refused_before_work(tmp_path, digits):
    pickle_only_model(tmp_path)
    with pytest.raises(DistilleryError, match="only pickle weights"):
        check_checkpoint_head(str(tmp_path), digits.label_names, "teacher.checkpoint")


def test_trust_remote_code_is_off_by_default():
    from distillery.params import validate

    assert validate({})["teacher"]["trust_remote_code"] is False


@pytest.mark.parametrize("spec, shape, message", [
    # each block halves H and W (2x2 max-pool, rounding down): 16 -> 8 -> 4 -> 2 -> 1 -> 0
    ({"arch": "cnn", "channels": [8, 16, 32, 64, 128]}, [3, 16, 16],
     r"teacher.model.channels = \[8, 16, 32, 64, 128\]: 5 blocks halve 16x16 to 0x0: at most 4 blocks for 16x16 "
     r"images \(input shape \[3, 16, 16\]\)"),
    # 28 -> 14 -> 7 -> 3 -> 1 and 10 -> 5 -> 2 -> 1 -> 0: the smaller side decides
    ({"arch": "cnn", "channels": [4, 4, 4, 4]}, [28, 10],
     r"teacher.model.channels = \[4, 4, 4, 4\]: 4 blocks halve 28x10 to 1x0: at most 3 blocks for 28x10 images"),
    ({"arch": "cnn", "channels": [4, 4]}, [1, 3, 3],
     r"teacher.model.channels = \[4, 4\]: 2 blocks halve 3x3 to 0x0: at most 1 block for 3x3 images"),
    ({"arch": "cnn"}, [256], r"teacher.model.arch = 'cnn' takes images, \(H, W\) or \(C, H, W\) per row; the inputs "
                             r"have shape \[256\] \(use arch: mlp\)"),
    ({"arch": "cnn"}, [2, 3, 8, 8], r"teacher.model.arch = 'cnn' takes images, .* the inputs have shape \[2, 3, 8, 8\]"),
])
def test_a_cnn_that_cannot_take_the_inputs_is_refused_naming_param_shape_and_limit(spec, shape, message):
    from distillery.models.zoo import check_model_fits

    with pytest.raises(DistilleryError, match=message):
        check_model_fits(spec, shape, "teacher.model")
    with pytest.raises(DistilleryError, match=message.replace("teacher.model", "student.model")):
        build_model(spec, shape, LABELS, "student.model")


@pytest.mark.parametrize("channels, shape", [([8, 16, 32, 64], [3, 16, 16]), ([4, 4, 4], [8, 8]), ([4], [2, 2]),
                                             ([4, 4, 4, 4], [1, 28, 28])])
def test_a_cnn_as_deep_as_the_images_allow_builds_to_1x1_maps(channels, shape):
    from distillery.models.zoo import check_model_fits

    check_model_fits({"arch": "cnn", "channels": channels}, shape, "teacher.model")
    model = build_model({"arch": "cnn", "channels": channels, "hidden_size": 8}, shape, LABELS)
    assert model(features=torch.zeros(2, *shape)).logits.shape == (2, 10)
    check_model_fits({"arch": "mlp", "hidden_sizes": [4]}, [256], "teacher.model")  # an MLP takes any shape


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_the_teacher_stage_refuses_a_cnn_too_deep_for_the_images_before_any_training(digits, tmp_path, role,
                                                                                     monkeypatch):
    """digits: 8x8, so 3 blocks at most; the student's model too, before the teacher trains, as distill would."""
    from distillery.training.students import train_students
    from distillery.methods.base import HARD
    from distillery.training.teacher import build_teacher

    from ..conftest import make_params

    monkeypatch.chdir(tmp_path)
    params = make_params(**{role: {"model": {"arch": "cnn", "channels": [4, 4, 4, 4]}}})
    message = rf"{role}.model.channels = \[4, 4, 4, 4\]: 4 blocks halve 8x8 to 0x0: at most 3 blocks for 8x8 images"
    with pytest.raises(DistilleryError, match=message):
        build_teacher(params, digits, tmp_path / "teacher")
    assert not (tmp_path / "teacher").exists() and not (tmp_path / ".cache").exists()  # no run was started
    if role == "student":
        with pytest.raises(DistilleryError, match=message):
            train_students(HARD, params, digits, tmp_path / "hard")
        assert not (tmp_path / "hard").exists() and not (tmp_path / ".cache").exists()


def test_stages_draw_no_loading_bar_but_other_bars_stay(tmp_path, capfd):
    """evaluate drew a "Loading weights" bar for every model it loaded."""
    from transformers.utils import logging as hf_logging

    build_model({"arch": "mlp", "hidden_sizes": [8]}, [8, 8], LABELS).save_pretrained(tmp_path)
    hf_logging.set_tqdm_hook(None)  # as a fresh process has it (a test before may have run a stage in this one)
    load_model(tmp_path)
    assert "Loading weights" in capfd.readouterr().err
    hide_loading_bars()
    try:
        load_model(tmp_path)
        list(hf_logging.tqdm(range(2), desc="Downloading"))
        err = capfd.readouterr().err
    finally:
        hf_logging.set_tqdm_hook(None)
    assert "Loading weights" not in err and "Downloading" in err
