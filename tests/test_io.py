import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery.errors import DistilleryError
from distillery.io import atomic_dir, atomic_path, read_logits, write_logits


def test_logits_round_trip_joins_by_id(tmp_path):
    ids = np.array([10, 3, 7])
    logits = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    write_logits(tmp_path / "l.parquet", ids, logits)
    table = pq.read_table(tmp_path / "l.parquet")
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("logits").type == pa.list_(pa.float32())
    got = read_logits(tmp_path / "l.parquet", np.array([3, 7, 10]), num_labels=2)
    np.testing.assert_array_equal(got, [[3, 4], [5, 6], [1, 2]])


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
