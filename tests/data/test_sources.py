"""The files params.yaml names: which they are, what a stage recorded of them, which changed, which a clone holds,
and the sources stage's digests, which re-run the stage that reads a changed one."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from distillery.data import sources
from distillery.data.prepare import prepare
from distillery.data.prepared import load_prepared
from distillery.errors import DistilleryError
from distillery.data.sources import (PREPARE_READS, changed_files, checkpoint_digests, checkpoint_record, digest,
                                     in_repo_copy, local_checkpoints, local_files, source_record, stale_stages, watch,
                                     watched)

from ..conftest import make_params


def test_local_files_are_the_sources_paths_of_every_kind_the_split_files_and_the_transfer_source():
    assert local_files({"source": "sklearn:digits"}) == {}
    assert local_files({"source": "hf:stanfordnlp/sst2:default", "transfer": {"source": "file:more.csv"}}) == {
        "data.source": "stanfordnlp/sst2", "data.transfer.source": "more.csv"}  # a Hub id: skipped where no path
    assert local_files({"source": "npy:data/mine"}) == {"data.source": "data/mine"}  # a kind added later, too


def test_a_local_dataset_folder_of_any_kind_is_watched_and_a_hub_id_is_not(tmp_path):
    """A new source kind, or ``hf:`` with a local dataset folder, was not watched: an edit re-ran nothing."""
    (tmp_path / "my_dataset").mkdir()
    (tmp_path / "my_dataset/train.arrow").write_bytes(b"rows")
    params = {**watched_params(), "data": {"source": "hf:my_dataset", "transfer": {"source": None, "rest": False}}}
    watch(params, tmp_path, workspace=tmp_path)
    recorded = json.loads((tmp_path / "data/sources/prepare.json").read_text())
    assert recorded == {"my_dataset": digest(tmp_path / "my_dataset")["sha256"]}
    (tmp_path / "my_dataset/train.arrow").write_bytes(b"other rows")
    assert watch(params, tmp_path, workspace=tmp_path)[0].startswith("my_dataset changed (sha256 ")
    params["data"]["source"] = "hf:stanfordnlp/sst2"
    watch(params, tmp_path, workspace=tmp_path)
    assert json.loads((tmp_path / "data/sources/prepare.json").read_text()) == {}
    assert local_files({"source": "files", "files": {"train": "a.tsv", "test": "b.tsv"}}) == {
        "data.files.train": "a.tsv", "data.files.test": "b.tsv"}
    assert local_files({"source": "npz:../shared/mnist.npz"}) == {"data.source": "../shared/mnist.npz"}


def test_a_stage_records_each_file_it_reads_by_its_sha256_and_says_when_it_changed(tmp_path):
    (tmp_path / "rows.csv").write_text("id,x,label\n0,1.5,0\n")
    data = {"source": "file:rows.csv", "transfer": {"source": "file:missing.csv"}}
    record = source_record(data, PREPARE_READS, tmp_path)
    digest = hashlib.sha256(b"id,x,label\n0,1.5,0\n").hexdigest()
    assert record == {"source_files": {"rows.csv": {"sha256": digest, "bytes": 19}}}  # the transfer's: not prepare's
    assert source_record({"source": "sklearn:digits"}, PREPARE_READS, tmp_path) == {}  # nothing added: same bytes

    meta = tmp_path / "data/prepared/meta.json"
    assert changed_files(meta, tmp_path) == [] and stale_stages(tmp_path) == {}  # not run yet
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"sizes": {}, **record}))
    assert stale_stages(tmp_path) == {}
    (tmp_path / "rows.csv").write_text("id,x,label\n0,2.5,0\n")
    now = hashlib.sha256(b"id,x,label\n0,2.5,0\n").hexdigest()
    assert stale_stages(tmp_path) == {"prepare": [f"rows.csv changed (sha256 {digest[:12]}… then, {now[:12]}… now)"]}
    (tmp_path / "rows.csv").unlink()
    assert changed_files(meta, tmp_path) == ["rows.csv is gone"]


def test_prepare_records_its_csv_and_the_default_source_records_nothing(tmp_path):
    rows = "\n".join(f"{i},{i % 7 * 0.5},{(i * 3) % 5 * 0.25},{i % 2}" for i in range(60))
    (tmp_path / "t.csv").write_text("id,a,b,label\n" + rows + "\n")
    params = make_params(data={"source": "file:t.csv", "feature_columns": "all", "label_column": "label"})
    prepare(params["data"], tmp_path / "prepared", root=tmp_path)
    meta = load_prepared(tmp_path / "prepared").meta
    assert meta["source_files"] == {"t.csv": {"sha256": sources.sha256(tmp_path / "t.csv"),
                                              "bytes": (tmp_path / "t.csv").stat().st_size}}
    prepare(make_params()["data"], tmp_path / "digits")
    assert "source_files" not in load_prepared(tmp_path / "digits").meta


def test_a_large_file_is_read_once_while_unchanged_and_a_small_one_each_time(tmp_path):
    big, small = tmp_path / "model.safetensors", tmp_path / "config.json"
    big.write_bytes(b"a" * (1 << 20))
    small.write_bytes(b"a")
    sources._sha256.cache_clear()
    assert sources.sha256(big) == sources.sha256(big) == hashlib.sha256(b"a" * (1 << 20)).hexdigest()
    assert sources._sha256.cache_info().hits == 1
    big.write_bytes(b"b" * (1 << 20))
    os.utime(big, ns=(1, 1))  # another time stamp: read again
    assert sources.sha256(big) == hashlib.sha256(b"b" * (1 << 20)).hexdigest()
    stamp = small.stat().st_mtime_ns
    small.write_bytes(b"b")
    os.utime(small, ns=(stamp, stamp))  # same size and time stamp: a small file is read again all the same
    assert sources.sha256(small) == hashlib.sha256(b"b").hexdigest()


def checkpoint(folder, weights: bytes = b"w1"):
    """A stand-in checkpoint folder: a config and weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_a_folder_s_digest_is_its_files_names_and_contents(tmp_path):
    first = digest(checkpoint(tmp_path / "a"))
    by_hand = hashlib.sha256()
    for name, content in (("config.json", b'{"model_type": "bert"}'), ("model.safetensors", b"w1")):
        by_hand.update(f"{name}\0{hashlib.sha256(content).hexdigest()}\n".encode())
    assert first == {"sha256": by_hand.hexdigest(), "bytes": 22 + 2}
    assert digest(checkpoint(tmp_path / "elsewhere")) == first  # where it lies is no part of it
    assert digest(checkpoint(tmp_path / "b", b"w2"))["sha256"] != first["sha256"]
    (tmp_path / "a/model.safetensors").rename(tmp_path / "a/weights.safetensors")
    assert digest(tmp_path / "a")["sha256"] != first["sha256"]  # a renamed file too


def test_the_local_checkpoints_of_a_block_and_of_the_params(tmp_path):
    checkpoint(tmp_path / "teacher-ckpt")
    checkpoint(tmp_path / "tok")
    teacher = {"model": {"pretrained": "teacher-ckpt", "tokenizer": "bert-base-uncased"}, "checkpoint": None}
    # a Hub id is no local checkpoint
    assert local_checkpoints(teacher, "teacher", tmp_path) == {"teacher.model.pretrained": "teacher-ckpt"}
    student = {"model": {"pretrained": None, "tokenizer": "tok"}}
    params = {"teacher": teacher, "student": student, "teachers": {"b": {"checkpoint": "tok"}},
              "data": {"tokenizer": None}}
    assert checkpoint_digests(params, tmp_path) == {"teacher-ckpt": digest(tmp_path / "teacher-ckpt")["sha256"],
                                                    "tok": digest(tmp_path / "tok")["sha256"]}
    assert checkpoint_digests(make_params(), tmp_path) == {}  # the default reads none
    assert checkpoint_record(student, "student", tmp_path) == {"source_files": {"tok": digest(tmp_path / "tok")}}
    assert checkpoint_record({"model": {}}, "student", tmp_path) == {}


def test_a_replaced_checkpoint_makes_its_stage_stale(tmp_path):
    folder = checkpoint(tmp_path / "ckpt")
    block = {"model": {"pretrained": "ckpt"}}
    was = digest(folder)["sha256"]
    for record in ("reports/training/teacher/sources.json", "reports/training/teachers/b/sources.json"):
        (tmp_path / record).parent.mkdir(parents=True)
        (tmp_path / record).write_text(json.dumps(checkpoint_record(block, "teacher", tmp_path)))
    assert stale_stages(tmp_path) == {}
    (folder / "model.safetensors").write_bytes(b"fine-tuned again")
    now = digest(folder)["sha256"]
    said = [f"ckpt changed (sha256 {was[:12]}… then, {now[:12]}… now)"]
    assert stale_stages(tmp_path) == {"teacher": said, "extra_teacher@b": said}


def test_a_clone_holds_what_git_or_dvc_tracks(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name in ("small.csv", "loose.csv", "data/big/rows.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("id\n")
    subprocess.run(["git", "add", "small.csv"], cwd=tmp_path, check=True)
    (tmp_path / "data/big.dvc").write_text("outs:\n- path: big\n")
    assert in_repo_copy(tmp_path / "small.csv", tmp_path)
    assert in_repo_copy(tmp_path / "data/big/rows.csv", tmp_path)
    assert not in_repo_copy(tmp_path / "loose.csv", tmp_path)


def watched_params(**teachers) -> dict:
    return {"data": {"source": "file:rows.csv", "transfer": {"source": "file:more.csv", "rest": False}},
            "teacher": {"checkpoint": "ckpt", "model": {}}, "student": {"model": {"pretrained": "org/hub-model"}},
            "teachers": {name: {"checkpoint": path, "model": {}} for name, path in teachers.items()}}


def test_each_reader_is_watched_for_its_own_files():
    assert watched(watched_params(b="ckpt")) == {
        "prepare": {"data.source": "rows.csv"}, "transfer": {"data.transfer.source": "more.csv"},
        "teacher": {"teacher.checkpoint": "ckpt"}, "student": {"student.model.pretrained": "org/hub-model"},
        "teachers/b": {"teachers.b.checkpoint": "ckpt"}}
    params = watched_params()
    params["data"]["transfer"]["rest"] = True  # the transfer set's rest rows: the source's rows outside the splits
    assert watched(params)["transfer"] == {"data.source": "rows.csv", "data.transfer.source": "more.csv"}


def test_the_sources_stage_writes_each_readers_digests_and_says_which_changed(tmp_path):
    (tmp_path / "rows.csv").write_text("a")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt/config.json").write_text("{}")
    folder = tmp_path / "data/sources"

    def files() -> dict:
        return {f.relative_to(folder).as_posix(): json.loads(f.read_text()) for f in sorted(folder.rglob("*.json"))}

    assert watch(watched_params(b="ckpt"), tmp_path) == []  # first run: nothing to compare with
    ckpt = digest(tmp_path / "ckpt")["sha256"]
    assert files() == {"prepare.json": {"rows.csv": hashlib.sha256(b"a").hexdigest()}, "student.json": {},
                       "teacher.json": {"ckpt": ckpt}, "teachers/b.json": {"ckpt": ckpt}, "transfer.json": {}}

    (tmp_path / "rows.csv").write_text("b")
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    assert watch(watched_params(b="ckpt"), tmp_path) == [
        f"rows.csv changed (sha256 {a[:12]}… then, {b[:12]}… now): prepare runs again"]
    assert files()["prepare.json"] == {"rows.csv": b}

    (tmp_path / "ckpt/config.json").write_text('{"hidden": 8}')
    said = watch(watched_params(b="ckpt"), tmp_path)
    assert [line.rsplit(": ", 1)[1] for line in said] == ["teacher runs again", "extra_teacher@b runs again"]
    assert said[0].startswith(f"ckpt changed (sha256 {ckpt[:12]}… then, ")

    (tmp_path / "rows.csv").unlink()  # gone: a clone that pulled the outputs keeps them, with a warning
    assert watch(watched_params(), tmp_path, workspace=tmp_path) == [
        f"warning: rows.csv (data.source) is gone: prepare keeps its outputs of the file as it was (sha256 "
        f"{b[:12]}…) and would fail if it ran; put the file back, or point data.source at where it is now"]
    assert files()["prepare.json"] == {"rows.csv": b}  # as recorded: prepare does not run for a file it cannot read
    assert "teachers/b.json" not in files()  # teachers.b left params: its file goes too


def test_a_queued_experiment_s_copy_without_a_file_checks_the_workspace_s(tmp_path, monkeypatch):
    """DVC runs a queued experiment in a copy of the repo (``.dvc/tmp/exps/...``) that lacks untracked files, with
    ``DVC_ROOT`` the workspace: the file there is what the experiment's stages would have to read."""
    workspace, copy = tmp_path / "workspace", tmp_path / "workspace/.dvc/tmp/exps/tmp1"
    copy.mkdir(parents=True)
    (workspace / "rows.csv").write_text("a")
    (workspace / "ckpt").mkdir()
    params = watched_params()
    watch(params, workspace, workspace=workspace)
    (copy / "data").mkdir()
    shutil.copytree(workspace / "data/sources", copy / "data/sources")  # the copy holds the workspace's records
    recorded = {f.name: f.read_text() for f in (copy / "data/sources").glob("*.json")}
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    assert watch(params, copy) == []  # the same file in the workspace: its stages' outputs stand, silently

    (workspace / "rows.csv").write_text("b")  # edited, and the workspace not reproduced since
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    with pytest.raises(DistilleryError) as refused:
        watch(params, copy)
    assert (f"lacks files the workspace holds, and they changed since the workspace's last `dvc repro`: rows.csv "
            f"(data.source; sha256 {a[:12]}… then, {b[:12]}… now)") in str(refused.value)
    assert "`git add` the files" in str(refused.value)
    assert {f.name: f.read_text() for f in (copy / "data/sources").glob("*.json")} == recorded  # nothing written

    (workspace / "rows.csv").unlink()  # gone from both: kept, with the warning
    assert watch(params, copy)[0].startswith("warning: rows.csv (data.source) is gone")
