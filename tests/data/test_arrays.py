"""data.arrays: every declared source kind is loaded by someone, and a kind declared without a loader says so; an
npz's labels follow a table's rules (data.label_names); its arrays' shapes are checked; a transfer source's images
are read alone."""
from __future__ import annotations

import re

import numpy as np
import pytest

from distillery.data import arrays
from distillery.data.arrays import ARRAY_SOURCES, load_source
from distillery.data.omitted import resolve
from distillery.data.params import SOURCE_KINDS, TEXT_KINDS
from distillery.data.prepare import prepare
from distillery.errors import DistilleryError

from ..conftest import make_params

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_every_declared_kind_is_an_array_source_or_a_text_and_table_kind():
    assert set(SOURCE_KINDS) == set(ARRAY_SOURCES) | set(TEXT_KINDS)
    assert not set(ARRAY_SOURCES) & set(TEXT_KINDS)


def test_the_digits_load_offline_as_pixels_with_their_positions_as_ids():
    raw = load_source("sklearn:digits")
    assert raw.inputs.shape == (1797, 8, 8) and raw.labels.shape == (1797,) and raw.pixel_max == 16.0
    assert raw.ids.tolist() == list(range(1797)) and raw.label_names == [str(n) for n in range(10)]
    assert 0.0 <= raw.inputs.min() and raw.inputs.max() == 1.0


def test_an_npz_source_is_read_from_the_repo_root(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(6, 2, 2)
    np.savez(tmp_path / "m.npz", x_train=x[:4], y_train=np.array([0, 1, 0, 1]), x_test=x[4:], y_test=np.array([1, 0]))
    raw = load_source("npz:m.npz", tmp_path)
    assert raw.test_mask.tolist() == [False] * 4 + [True] * 2 and raw.labels.tolist() == [0, 1, 0, 1, 1, 0]
    np.testing.assert_allclose(raw.inputs, x / 255.0, rtol=1e-6)


def test_a_kind_declared_without_a_loader_names_where_the_loader_goes(monkeypatch):
    monkeypatch.setitem(SOURCE_KINDS, "npy", "npy:<folder> with x.npy and y.npy")
    with pytest.raises(DistilleryError, match=r"data.source = 'npy:rows': the kind 'npy' is declared in "
                                              r"data.params.SOURCE_KINDS \(npy:<folder> with x.npy and y.npy\) but is "
                                              r"no array source: it has no loader in data.arrays.ARRAY_SOURCES"):
        load_source("npy:rows")
    monkeypatch.setitem(ARRAY_SOURCES, "npy", lambda rest, root, source, labelled: arrays.RawData(
        np.zeros((2, 3)), np.array(["b", "a"]), np.array([7, 8]), ["a", "b"]))
    raw = load_source("npy:rows")  # one entry: the loader is found
    assert raw.ids.tolist() == [7, 8] and raw.labels.tolist() == [1, 0]  # its own names index its labels


def test_an_unknown_kind_lists_the_known_ones():
    with pytest.raises(DistilleryError, match=r"data.source = 'csv:rows.csv': unknown data source; expected one of: "
                                              r"sklearn:digits"):
        load_source("csv:rows.csv")


def test_the_digits_take_data_label_names_for_their_ten_classes():
    raw = load_source("sklearn:digits", label_names=DIGIT_NAMES)
    assert raw.label_names == DIGIT_NAMES and raw.labels.tolist() == load_source("sklearn:digits").labels.tolist()
    with pytest.raises(DistilleryError, match=re.escape(
            "data.source = 'sklearn:digits': column 'target' has 1260 labels outside 0..2: ids [3, 4, 5, 6, 7] and "
            "1,255 more have [3, 4, 5, 6, 7]")):  # 1797 rows less the 178 + 182 + 177 of classes 0..2
        load_source("sklearn:digits", label_names=["zero", "one", "two"])


def save_npz(path, train_labels, test_labels, **arrays):
    """An .npz of 2x2 uint8 images (row i all i) with these labels, ``arrays`` in place of or beside them."""
    n = len(train_labels)
    x = np.repeat(np.arange(n + len(test_labels), dtype=np.uint8), 4).reshape(-1, 2, 2)
    np.savez(path, **{"x_train": x[:n], "y_train": np.asarray(train_labels), "x_test": x[n:],
                      "y_test": np.asarray(test_labels), **arrays})


@pytest.mark.parametrize("y_train, y_test, names, labels", [
    ([0, 1, 2, 1], [2, 0], ["zero", "one", "two"], [0, 1, 2, 1, 2, 0]),  # indices 0..k-1 into the names
    (["two", "zero", "one", "zero"], ["one", "two"], ["zero", "one", "two"], [2, 0, 1, 0, 1, 2]),  # names
    ([5, 6, 7, 5], [6, 7], [5, 6, 7], [0, 1, 2, 0, 1, 2]),  # 7 is no index 0..2: numbers named by value
    ([[0], [1], [2], [1]], [[2], [0]], None, [0, 1, 2, 1, 2, 0]),  # (N, 1), as Keras' CIFAR
])
def test_an_npz_s_labels_are_read_as_a_table_s_with_data_label_names(tmp_path, y_train, y_test, names, labels):
    save_npz(tmp_path / "m.npz", y_train, y_test)
    raw = load_source("npz:m.npz", tmp_path, names)
    assert raw.labels.tolist() == labels and raw.label_names == [str(n) for n in names or ["0", "1", "2"]]


@pytest.mark.parametrize("y_train, y_test, names, message", [
    (["two", "zero", "one", "zero"], ["one", "two"], None,
     "array y_train/y_test must hold integer class indices, got dtype object (first values ['two', 'zero', 'one', "
     "'zero', 'one']): class names need data.label_names, the classes in index order (e.g. data.label_names: [one, "
     "two, zero])"),
    (["two", "zero", "one", "zero"], ["one", "three"], ["zero", "one", "two"],
     "array y_train/y_test has 1 labels outside the label set ['zero', 'one', 'two']: ids [5] have ['three']"),
    ([0, 1, 2, 1], [3, 0], ["zero", "one", "two"],
     "array y_train/y_test has 1 labels outside 0..2: ids [4] have [3]"),
    ([1, 2, 3, 1], [2, 3], None,
     "array y_train/y_test holds the labels [1, 2, 3] and none of [0]: without data.label_names labels are class "
     "indices 0..3, and a class without rows is an output that no row teaches; name the classes by these values with "
     "data.label_names: [1, 2, 3] (or number the labels from 0)"),
])
def test_npz_labels_that_name_no_class_are_refused_naming_the_ids(tmp_path, y_train, y_test, names, message):
    save_npz(tmp_path / "m.npz", y_train, y_test)
    with pytest.raises(DistilleryError, match=re.escape(f"data.source = 'npz:m.npz': {message}")):
        load_source("npz:m.npz", tmp_path, names)


def test_the_label_names_that_the_unused_index_message_gives_work(tmp_path):
    save_npz(tmp_path / "m.npz", [1, 2, 3, 1], [2, 3])
    raw = load_source("npz:m.npz", tmp_path, [1, 2, 3])
    assert raw.labels.tolist() == [0, 1, 2, 0, 1, 2] and raw.label_names == ["1", "2", "3"]


def test_an_npz_prepared_with_label_names_omits_a_class_by_name(tmp_path):
    save_npz(tmp_path / "m.npz", [f"c{k % 4}" for k in range(40)], [f"c{k % 4}" for k in range(8)])
    names = ["c0", "c1", "c2", "c3"]
    prepared = prepare(make_params(data={"source": "npz:m.npz", "label_names": names})["data"], tmp_path / "p",
                       root=tmp_path)
    assert prepared.label_names == names and resolve(["c3"], prepared.label_names) == [3]
    test = prepared.splits["test"]
    assert test.ids.tolist() == list(range(40, 48)) and test.labels.tolist() == [0, 1, 2, 3] * 2


def images(n, side=2, dtype=np.uint8):
    return np.zeros((n, side, side), dtype)


@pytest.mark.parametrize("arrays, message", [
    (dict(y_train=np.eye(3, dtype=np.int64)[[0, 1, 2, 1]]),
     "y_train must hold one class per row, of shape (N,) or (N, 1); it has shape [4, 3]: for one-hot labels take "
     "argmax, y_train.argmax(axis=1)"),
    (dict(y_test=np.zeros((2, 1, 1), np.int64)),
     "y_test must hold one class per row, of shape (N,) or (N, 1); it has shape [2, 1, 1]"),
    (dict(x_train=images(4, 16), x_test=images(2, 20)),
     "x_train holds inputs of shape [16, 16] but x_test of shape [20, 20]: every row needs the same shape"),
    (dict(x_test=images(2, dtype=np.float32)),
     "x_train has dtype uint8 but x_test float32: uint8 arrays are pixels of 0..255 and others are features, so both "
     "need the same dtype"),
    (dict(x_train=np.zeros(4, np.uint8)), "x_train must hold one input per row, of shape (N, ...); it has shape [4]"),
    (dict(x_test=images(3)), "x_test has 3 rows but y_test has 2"),
])
def test_npz_arrays_of_the_wrong_shape_are_refused_naming_them(tmp_path, arrays, message):
    save_npz(tmp_path / "m.npz", [0, 1, 2, 1], [2, 0], **arrays)
    with pytest.raises(DistilleryError, match=re.escape(f"{tmp_path / 'm.npz'}: {message}")):
        load_source("npz:m.npz", tmp_path)


def test_a_npy_file_is_no_npz_source_but_a_transfer_source_s_images(tmp_path):
    np.save(tmp_path / "m.npy", np.full((3, 2, 2), 51, np.uint8))
    with pytest.raises(DistilleryError, match=re.escape(
            f"{tmp_path / 'm.npy'}: a .npy file holds one array, but an npz: source is an .npz of the arrays "
            "['x_train', 'y_train', 'x_test', 'y_test'] (numpy.savez); a .npy of images can serve as "
            "data.transfer.source")):
        load_source("npz:m.npy", tmp_path)
    raw = load_source("npz:m.npy", tmp_path, labelled=False)
    assert raw.labels is None and raw.ids.tolist() == [0, 1, 2] and raw.pixel_max == 255.0
    np.testing.assert_allclose(raw.inputs, np.full((3, 2, 2), 0.2), rtol=1e-6)  # 51 / 255


@pytest.mark.parametrize("arrays, rows", [
    (dict(x_train=images(3)), 3),
    (dict(x_train=images(3), x_test=images(2), y_train=np.array(["a", "b", "c"])), 5),  # labels ignored
    (dict(x=images(4, dtype=np.float32), id=np.arange(4)), 4),
])
def test_a_transfer_source_s_images_are_read_without_labels(tmp_path, arrays, rows):
    np.savez(tmp_path / "u.npz", **arrays)
    raw = load_source("npz:u.npz", tmp_path, labelled=False)
    assert raw.inputs.shape == (rows, 2, 2) and raw.labels is None and raw.ids.tolist() == list(range(rows))


def test_an_npz_without_images_is_refused_naming_its_arrays(tmp_path):
    np.savez(tmp_path / "u.npz", images=images(3), y=np.zeros(3))
    with pytest.raises(DistilleryError, match=re.escape(
            f"{tmp_path / 'u.npz'}: no images: unlabelled rows are an .npz's x_train (and x_test), or its x, or a .npy "
            "array; it has the arrays ['images', 'y']")):
        load_source("npz:u.npz", tmp_path, labelled=False)


def test_a_file_that_is_no_numpy_file_is_refused(tmp_path):
    (tmp_path / "m.npz").write_text("x,y\n1,2\n")
    with pytest.raises(DistilleryError, match=re.escape(f"{tmp_path / 'm.npz'}: not readable as NumPy arrays")):
        load_source("npz:m.npz", tmp_path)
