"""data.arrays: every declared source kind is loaded by someone, and a kind declared without a loader says so."""
from __future__ import annotations

import numpy as np
import pytest

from distillery.data import arrays
from distillery.data.arrays import ARRAY_SOURCES, load_source
from distillery.data.params import SOURCE_KINDS, TEXT_KINDS
from distillery.errors import DistilleryError


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
    monkeypatch.setitem(ARRAY_SOURCES, "npy", lambda rest, root, source: arrays.RawData(
        np.zeros((2, 3)), np.array([0, 1]), np.array([7, 8]), ["a", "b"]))
    assert load_source("npy:rows").ids.tolist() == [7, 8]  # one entry: the loader is found


def test_an_unknown_kind_lists_the_known_ones():
    with pytest.raises(DistilleryError, match=r"data.source = 'csv:rows.csv': unknown data source; expected one of: "
                                              r"sklearn:digits"):
        load_source("csv:rows.csv")
