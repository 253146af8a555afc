"""One layout of images inside the pipeline (``data.channels``, ``distillery.data.layout``): channels-last sources
(PIL's, Keras' (N, H, W, C)) are moved to channels first once in prepare, so that they give the prepared arrays,
transfer sets, jitter and trained CNN of the same images given channels first, bit for bit; a shape whose channel
axis auto cannot tell is refused, naming it, before any work; new images for predict are moved as prepare moved
the source's."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distillery.data.augment import jitter_batch, shift_image
from distillery.data.inputs import input_record, read_rows
from distillery.data.layout import channels_first, layout_shape, source_layout
from distillery.data.prepare import prepare
from distillery.data.prepared import load_prepared
from distillery.data.transfer import build_transfer
from distillery.errors import DistilleryError

from ..conftest import make_params

N, H, W = 90, 6, 5


def npz(path, x, y=None):
    """``x`` as an MNIST-layout .npz: its first 70 rows train, the rest test; labels 0, 1, 2 in turn."""
    y = np.arange(len(x)) % 3 if y is None else y
    np.savez(path, x_train=x[:70], y_train=y[:70], x_test=x[70:], y_test=y[70:])


def hwc_images(channels: int, seed: int = 0) -> np.ndarray:
    """(N, H, W, C) uint8 images of 1..255: no pixel 0, so an all-zero image is one jitter blanked."""
    return np.random.default_rng(seed).integers(1, 256, (N, H, W, channels), dtype=np.uint8)


@pytest.fixture(scope="module", params=[1, 3], ids=["grey", "rgb"])
def both(request, tmp_path_factory):
    """The same images as a channels-last and a channels-first source, each prepared (data.channels: auto)."""
    root = tmp_path_factory.mktemp(f"layout{request.param}")
    hwc = hwc_images(request.param)
    npz(root / "hwc.npz", hwc)
    npz(root / "chw.npz", np.moveaxis(hwc, -1, 1))
    for name in ("hwc", "chw"):
        prepare(make_params(data={"source": f"npz:{name}.npz"})["data"], root / name, root)
    return root, hwc, load_prepared(root / "hwc"), load_prepared(root / "chw")


# --------------------------------------------------------------------------------------------- the layout


@pytest.mark.parametrize("shape, layout", [
    ((16, 16, 3), "last"), ((16, 16, 1), "last"), ((28, 28, 4), "last"),
    ((3, 16, 16), "first"), ((1, 28, 28), "first"), ((4, 8, 8), "first"),
    ((8, 8), None), ((28, 28), None), ((256,), None),  # no channel axis: nothing to move
])
def test_auto_reads_the_channel_axis_where_one_end_alone_can_hold_it(shape, layout):
    assert source_layout(shape, "auto", "here") == layout


@pytest.mark.parametrize("shape, why", [
    ((3, 8, 3), r"both the first and the last axis could hold the channels \(1, 3 or 4\)"),
    ((1, 8, 4), r"both the first and the last axis could hold the channels \(1, 3 or 4\)"),
    ((5, 32, 32), "neither the first nor the last axis holds 1, 3 or 4 channels"),
    ((16, 16, 16), "neither the first nor the last axis holds 1, 3 or 4 channels"),
])
def test_auto_refuses_a_shape_it_cannot_tell_naming_it_and_the_param(shape, why):
    with pytest.raises(DistilleryError, match=rf"here: samples of shape \[{', '.join(map(str, shape))}\], channels "
                                              rf"first \(C, H, W\) or last \(H, W, C\)\? data.channels = 'auto' cannot "
                                              rf"tell: {why}; set data.channels: first or last"):
        source_layout(shape, "auto", "here")
    assert source_layout(shape, "first", "here") == "first" and source_layout(shape, "last", "here") == "last"


def test_first_or_last_on_samples_without_a_channel_axis_is_refused():
    with pytest.raises(DistilleryError, match=r"here: data.channels = 'last', but its samples have shape \[8, 8\]: no "
                                              r"channel axis .*; set data.channels: auto"):
        source_layout((8, 8), "last", "here")


def test_the_move_is_a_transpose_bit_for_bit_and_the_source_shape_is_its_inverse():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    moved = channels_first(x, "last")
    assert moved.shape == (2, 3, 4, 5) and moved.flags.c_contiguous
    assert moved[1, 2, 3, 4] == x[1, 3, 4, 2] == 1 * 60 + 3 * 15 + 4 * 3 + 2
    np.testing.assert_array_equal(moved, x.transpose(0, 3, 1, 2))
    assert channels_first(x, "first") is x and channels_first(x, None) is x
    assert layout_shape([3, 4, 5], "last") == [4, 5, 3] and layout_shape([3, 4, 5], "first") == [3, 4, 5]


# --------------------------------------------------------------------------------------------- prepare


def test_channels_last_and_first_prepare_the_same_arrays_bit_for_bit(both):
    _, hwc, last, first = both
    channels = hwc.shape[-1]
    assert last.input_shape == first.input_shape == [channels, H, W]
    for name in ("train", "validation", "test"):
        a, b = last.splits[name], first.splits[name]
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.inputs.dtype == b.inputs.dtype == np.float32
        np.testing.assert_array_equal(a.inputs, b.inputs)
        # by hand: row i is image id i with its channel axis in front, pixels / 255
        i = 5
        assert a.inputs[i, channels - 1, 2, 3] == np.float32(hwc[a.ids[i], 2, 3, channels - 1] / 255.0)
    assert last.meta["inputs"] == {"kind": "array", "pixel_max": 255.0, "channels": "last"}
    assert first.meta["inputs"] == {"kind": "array", "pixel_max": 255.0, "channels": "first"}
    assert input_record(last)["shape"] == [channels, H, W]


def test_images_without_a_channel_axis_record_no_layout(tmp_path):
    """(N, H, W) images (MNIST's, the digits'): prepared and recorded as before, no ``channels`` key anywhere."""
    npz(tmp_path / "grey.npz", hwc_images(1)[..., 0])
    prepare(make_params(data={"source": "npz:grey.npz"})["data"], tmp_path / "out", tmp_path)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["input_shape"] == [H, W] and meta["inputs"] == {"kind": "array", "pixel_max": 255.0}


@pytest.mark.parametrize("shape, channels, prepared_shape", [
    ((3, 5, 3), "last", [3, 3, 5]), ((3, 5, 3), "first", [3, 5, 3]),
    ((5, 6, 7), "first", [5, 6, 7]), ((5, 6, 7), "last", [7, 5, 6]),
])
def test_a_shape_auto_cannot_tell_is_refused_before_any_work_and_read_as_data_channels_says(tmp_path, shape,
                                                                                            channels, prepared_shape):
    npz(tmp_path / "odd.npz", np.ones((N, *shape), np.uint8))
    with pytest.raises(DistilleryError, match=rf"data.source = 'npz:odd.npz': samples of shape "
                                              rf"\[{', '.join(map(str, shape))}\], .* set data.channels: first or last"):
        prepare(make_params(data={"source": "npz:odd.npz"})["data"], tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()
    prepare(make_params(data={"source": "npz:odd.npz", "channels": channels})["data"], tmp_path / "out", tmp_path)
    assert load_prepared(tmp_path / "out").input_shape == prepared_shape


def test_data_channels_where_there_is_no_channel_axis_is_refused(tmp_path):
    with pytest.raises(DistilleryError, match=r"data.source = 'sklearn:digits': data.channels = 'last', but its "
                                              r"samples have shape \[8, 8\]: no channel axis"):
        prepare(make_params(data={"channels": "last"})["data"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DistilleryError, match=r"data.channels = 'first' with data.source = 'file:t.csv': it says "
                                              r"where the channel axis of images is"):
        make_params(data={"source": "file:t.csv", "channels": "first"},
                    teacher={"model": {"arch": "hf", "pretrained": "x"}},
                    student={"model": {"arch": "hf", "pretrained": "x"}})
    with pytest.raises(DistilleryError, match=r"data.channels = 'middle': must be one of 'auto', 'first', 'last'"):
        make_params(data={"channels": "middle"})


# --------------------------------------------------------------------------------------------- transfer and jitter


def test_a_transfer_source_is_moved_as_the_source_was(both):
    root, _, last, _ = both
    channels = last.input_shape[0]
    other = hwc_images(channels, seed=1)
    npz(root / "more_hwc.npz", other)
    npz(root / "more_chw.npz", np.moveaxis(other, -1, 1))
    sets = {}
    for name in ("more_hwc", "more_chw"):
        params = make_params(data={"source": "npz:hwc.npz", "transfer": {"source": f"npz:{name}.npz"}})
        sets[name] = build_transfer(params["data"], last, root)
    assert sets["more_hwc"].inputs.shape == (N, channels, H, W)
    np.testing.assert_array_equal(sets["more_hwc"].inputs, sets["more_chw"].inputs)
    np.testing.assert_array_equal(sets["more_hwc"].inputs[7, -1, 4, 1], np.float32(other[7, 4, 1, -1] / 255.0))
    params = make_params(data={"source": "npz:hwc.npz", "channels": "last", "transfer": {"source": "npz:more_chw.npz"}})
    with pytest.raises(DistilleryError, match=rf"data.transfer.source: 'npz:more_chw.npz': inputs of shape "
                                              rf"\[{channels}, {H}, {W}\], \[{W}, {channels}, {H}\] channels first; the "
                                              rf"prepared data's are \[{channels}, {H}, {W}\] \(channels first\)"):
        build_transfer(params["data"], last, root)


def test_jittered_copies_of_channels_last_images_shift_h_and_w_and_blank_none(both):
    root, hwc, last, _ = both
    tp = {"augment": 3, "jitter": 1}
    params = make_params(data={"source": "npz:hwc.npz", "transfer": tp})
    transfer = build_transfer(params["data"], last, root)
    train = last.splits["train"]
    copies = transfer.inputs
    assert len(copies) == 3 * len(train.ids)
    blank = (copies.reshape(len(copies), -1) == 0).all(axis=1)
    assert blank.sum() == 0  # channels-last jitter had shifted W and C: a grey image blanked at every dx != 0
    # by hand, on the source's own (H, W, C) image: the first copy's shift moves every channel's H and W alike
    from distillery.data.transfer import jitter_images

    _, origin, shifts = jitter_images(train.inputs, {**tp, "seed": 0, "noise": 0.0})
    for k in range(6):
        (dy, dx), image = shifts[k], hwc[train.ids[origin[k]]] / np.float32(255)
        expected = np.zeros_like(image)
        expected[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
            image[max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
        np.testing.assert_array_equal(copies[k], np.moveaxis(expected, -1, 0).astype(np.float32))
    if hwc.shape[-1] == 1:  # what the channels-last array gave before: most copies blank
        old = np.stack([shift_image(hwc[train.ids[r]], int(dy), int(dx)) for r, (dy, dx) in zip(origin, shifts)])
        assert (old.reshape(len(old), -1) == 0).all(axis=1).mean() > 0.5


def test_the_teachers_jitter_on_channels_last_images_blanks_none(both):
    _, _, last, _ = both
    x = torch.from_numpy(last.splits["train"].inputs)
    torch.manual_seed(3)
    out = jitter_batch(x, 1)
    assert int((out.reshape(len(x), -1) == 0).all(dim=1).sum()) == 0
    torch.manual_seed(3)
    dy, dx = torch.randint(-1, 2, (2, len(x)))
    for i in range(len(x)):  # each image shifted in H and W by its own (dy, dx), every channel alike
        np.testing.assert_array_equal(out[i].numpy(), shift_image(x[i].numpy(), int(dy[i]), int(dx[i])))


def test_a_cnn_teacher_trained_on_channels_last_images_is_the_one_trained_on_channels_first(both, tmp_path,
                                                                                            monkeypatch):
    """The same teacher, bit for bit, jitter and all: the CNN sees (C, H, W) images either way."""
    from safetensors.numpy import load_file

    from distillery.training.teacher import build_teacher

    _, _, last, first = both
    params = make_params(data={"source": "npz:hwc.npz"}, teacher={
        "model": {"arch": "cnn", "channels": [4, 8], "hidden_size": 8},
        "train": {"max_steps": 20, "eval_steps": 10, "jitter": 1}})
    weights = {}
    for name, prepared in (("last", last), ("first", first)):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)  # each its own run directory: nothing reused
        build_teacher(params, prepared, tmp_path / name / "teacher")
        weights[name] = load_file(tmp_path / name / "teacher" / "model.safetensors")
        config = json.loads((tmp_path / name / "teacher" / "config.json").read_text())
        assert config["input_shape"] == last.input_shape
    assert weights["last"].keys() == weights["first"].keys()
    for key in weights["last"]:
        np.testing.assert_array_equal(weights["last"][key], weights["first"][key])
    assert weights["last"]["net.2.weight"].shape[1] == last.input_shape[0]  # Conv2d(C, 4): C input channels


# --------------------------------------------------------------------------------------------- new images (predict)


def test_new_images_in_the_sources_layout_or_channels_first_give_the_prepared_inputs(both, tmp_path):
    _, hwc, last, _ = both
    record = input_record(last)
    assert record["channels"] == "last" and record["shape"] == [hwc.shape[-1], H, W]
    test = last.splits["test"]
    given = {"hwc": hwc[test.ids], "chw": np.moveaxis(hwc[test.ids], -1, 1),
             "flat": hwc[test.ids].reshape(len(test.ids), -1)}  # flattened as the source's rows are
    for name, x in given.items():
        np.save(tmp_path / f"{name}.npy", x)
        np.testing.assert_array_equal(read_rows(record, tmp_path / f"{name}.npy").inputs, test.inputs)
    np.save(tmp_path / "one.npy", hwc[test.ids[4]])  # one image, (H, W, C): one row
    one = read_rows(record, tmp_path / "one.npy")
    assert one.ids.tolist() == [0]
    np.testing.assert_array_equal(one.inputs, test.inputs[4:5])
    np.save(tmp_path / "wrong.npy", hwc[test.ids][:, :, :4])
    c = hwc.shape[-1]
    with pytest.raises(DistilleryError, match=rf"wrong.npy: inputs of shape \[20, {H}, 4, {c}\]; the model takes "
                                              rf"\(N, {H}, {W}, {c}\) or \(N, {H * W * c}\) as its source holds them "
                                              rf"\(channels last\), or \(N, {c}, {H}, {W}\) channels first"):
        read_rows(record, tmp_path / "wrong.npy")


def test_a_model_of_images_without_channels_takes_a_size_1_channel_axis_and_one_image(tmp_path):
    grey = hwc_images(1)
    npz(tmp_path / "grey.npz", grey[..., 0])  # (N, H, W): the model's shape is [H, W]
    prepare(make_params(data={"source": "npz:grey.npz"})["data"], tmp_path / "out", tmp_path)
    prepared = load_prepared(tmp_path / "out")
    record, test = input_record(prepared), prepared.splits["test"]
    for name, x in {"hw1": grey[test.ids], "1hw": np.moveaxis(grey[test.ids], -1, 1)}.items():
        np.save(tmp_path / f"{name}.npy", x)
        np.testing.assert_array_equal(read_rows(record, tmp_path / f"{name}.npy").inputs, test.inputs)
    np.save(tmp_path / "one.npy", grey[test.ids[2], :, :, 0])  # (H, W): one image
    np.testing.assert_array_equal(read_rows(record, tmp_path / "one.npy").inputs, test.inputs[2:3])
    np.save(tmp_path / "three.npy", grey[test.ids].repeat(3, axis=-1))
    with pytest.raises(DistilleryError, match=rf"inputs of shape \[20, {H}, {W}, 3\]; the model takes \(N, {H}, {W}\) "
                                              rf"or \(N, {H * W}\); \(N, {H}, {W}, 1\) and \(N, 1, {H}, {W}\) too"):
        read_rows(record, tmp_path / "three.npy")
