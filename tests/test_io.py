import os
import stat

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery.errors import DistilleryError
from distillery.io import atomic_dir, atomic_path, read_logits, write_logits, write_text


def test_logits_round_trip_joins_by_id(tmp_path):
    ids = np.array([10, 3, 7])
    logits = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    write_logits(tmp_path / "l.parquet", ids, logits)
    table = pq.read_table(tmp_path / "l.parquet")
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("logits").type == pa.list_(pa.float32(), 2)
    columns = pq.ParquetFile(tmp_path / "l.parquet").metadata.row_group(0)
    assert "DELTA_BINARY_PACKED" in columns.column(0).encodings and columns.column(0).compression == "ZSTD"
    assert "BYTE_STREAM_SPLIT" in columns.column(1).encodings and columns.column(1).compression == "ZSTD"
    got = read_logits(tmp_path / "l.parquet", np.array([3, 7, 10]), num_labels=2)
    np.testing.assert_array_equal(got, [[3, 4], [5, 6], [1, 2]])


@pytest.mark.parametrize("top_k", [None, 2])
def test_shuffled_ids_round_trip_by_id(tmp_path, top_k):
    rng = np.random.default_rng(0)
    ids = rng.permutation(10_000)[:500] * 7 + 3
    logits = rng.normal(size=(500, 3)).astype(np.float32)
    write_logits(tmp_path / "l.parquet", ids, logits, top_k)  # k = C - 1: exact
    order = rng.permutation(500)
    got = read_logits(tmp_path / "l.parquet", ids[order], num_labels=3, T=5.0)
    np.testing.assert_allclose(got, logits[order], rtol=0, atol=1e-6 if top_k else 0)


def test_old_variable_list_files_still_read(tmp_path):
    table = pa.table({"id": pa.array([5, 1], pa.int64()),
                      "logits": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))})
    pq.write_table(table, tmp_path / "old.parquet")
    np.testing.assert_array_equal(read_logits(tmp_path / "old.parquet", np.array([1, 5]), 2), [[3, 4], [1, 2]])


@pytest.mark.parametrize("classes, bound", [(2, 16), (10, 48), (1000, 4008)])
def test_full_logits_take_at_most_4c_bytes_and_the_id_per_row(tmp_path, classes, bound):
    rng = np.random.default_rng(0)
    rows = 20_000 if classes < 1000 else 1000
    logits = (3 * rng.normal(size=(rows, classes))).astype(np.float32)
    write_logits(tmp_path / "l.parquet", rng.permutation(rows * 2)[:rows], logits)
    assert (tmp_path / "l.parquet").stat().st_size / rows <= bound  # 8 bytes for the int64 id


def test_top_k_file_keeps_k_logits_and_the_rest(tmp_path):
    logits = np.array([[0.0, 3.0, 1.0, -2.0, 0.5]], np.float32)
    write_logits(tmp_path / "l.parquet", np.array([4]), logits, top_k=2)
    table = pq.read_table(tmp_path / "l.parquet")
    assert table.column_names == ["id", "top_k_index", "top_k_logits", "rest_mean", "rest_lse"]
    assert table.column("top_k_index").to_pylist() == [[1, 2]]
    assert table.column("top_k_logits").to_pylist() == [[3.0, 1.0]]
    assert table.column("rest_mean").to_pylist() == [pytest.approx(-0.5)]
    assert table.column("rest_lse").to_pylist() == [pytest.approx(np.log(1 + np.exp(-2) + np.exp(0.5)))]
    with pytest.raises(DistilleryError, match="logits have 5 classes but the data has 4 labels"):
        read_logits(tmp_path / "l.parquet", np.array([4]), num_labels=4)


@pytest.mark.parametrize(
    "ids, logits, wanted, num_labels, message",
    [
        ([1, 2], [[0, 1], [1, 0]], [1, 2, 3], 2, "1 missing (e.g. [3]), 0 extra"),
        ([1, 2, 9], [[0, 1], [1, 0], [1, 1]], [1, 2], 2, "0 missing (e.g. []), 1 extra (e.g. [9])"),
        ([1, 2], [[0, 1], [1, 0]], [1, 2], 3, "logits have 2 classes but the data has 3 labels"),
        ([1, 2], [[0, np.nan], [1, 0]], [1, 2], 2, "NaN/inf logits for ids [1]"),
        ([1, 1], [[0, 1], [1, 0]], [1], 2, "repeated ids [1]"),
    ],
)
def test_bad_logits_are_named(tmp_path, ids, logits, wanted, num_labels, message):
    write_logits(tmp_path / "l.parquet", np.array(ids), np.array(logits, np.float32))
    with pytest.raises(DistilleryError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        read_logits(tmp_path / "l.parquet", np.array(wanted), num_labels)


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_whole_dir_or_nothing(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_atomic_writes_get_the_modes_of_the_umask_not_private_temporaries(tmp_path, mask, file_mode, dir_mode):
    before = os.umask(mask)
    try:
        write_text(tmp_path / "report.md", "# r\n")
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "model/config.json").stat().st_mode) == file_mode


def test_atomic_path_keeps_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    import os

    target = tmp_path / "metrics.json"
    target.write_text("old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_temporaries_left_by_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".out.txt.abc123.tmp").write_text("half")  # what kill -9 inside atomic_path leaves
    (tmp_path / ".d.xyz.tmp").mkdir()
    (tmp_path / ".other.txt.abc.tmp").write_text("someone else's")
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("done")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "a").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.txt.abc.tmp", "d", "out.txt"]
