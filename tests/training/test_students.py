"""Training students: alignment by id, kd(alpha=0) == hard, determinism, logged terms."""
import shutil

import numpy as np
import pytest
import torch

from distillery.io import read_logits, write_logits
from distillery.models.zoo import load_model
from distillery.methods import HARD, get_method
from distillery.training.students import seed_dir, train_students

from ..conftest import make_params


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints go to ./.cache


def fake_teacher_logits(digits, out_dir, shuffle_seed=None):
    """Deterministic 'teacher' logits (a fixed function of the labels and ids), optionally rows shuffled."""
    for name, split in digits.splits.items():
        rng = np.random.default_rng(split.ids)  # depends on the ids only
        logits = rng.normal(size=(len(split.ids), digits.num_labels)).astype(np.float32)
        logits[np.arange(len(split.ids)), split.labels] += 4.0
        order = np.arange(len(split.ids))
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(order)
        write_logits(out_dir / f"{name}.parquet", split.ids[order], logits[order])


def weights(root, seed):
    return {k: v.clone() for k, v in load_model(seed_dir(root, seed)).state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def train(kind, params, digits, tmp_path, name, logits_dir=None, live_root=None, keep_runs=False):
    out = tmp_path / name
    method = HARD if kind == "hard" else get_method(params["kd"]["method"])
    train_students(method, params, digits, out, live_root, logits_dir, keep_runs=keep_runs)
    return out


def test_shuffled_logits_file_gives_identical_student(digits, tmp_path):
    params = make_params(train={"seeds": [0]})
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    fake_teacher_logits(digits, tmp_path / "a")
    fake_teacher_logits(digits, tmp_path / "b", shuffle_seed=123)
    plain = train("kd", params, digits, tmp_path, "plain", tmp_path / "a")
    shuffled = train("kd", params, digits, tmp_path, "shuffled", tmp_path / "b")
    assert_same_weights(weights(plain, 0), weights(shuffled, 0))


def test_alpha_zero_student_equals_hard_baseline(digits, tmp_path):
    """Same init, data order and steps: with alpha=0 the KD student *is* the hard student."""
    params = make_params(kd={"alpha": 0.0})
    (tmp_path / "l").mkdir()
    fake_teacher_logits(digits, tmp_path / "l")
    kd = train("kd", params, digits, tmp_path, "kd", tmp_path / "l")
    hard = train("hard", params, digits, tmp_path, "hard")
    for seed in params["train"]["seeds"]:
        assert_same_weights(weights(kd, seed), weights(hard, seed))
    # and the teacher term does change the student when alpha > 0
    kd_half = train("kd", make_params(kd={"alpha": 0.5}), digits, tmp_path, "kd_half", tmp_path / "l")
    assert not torch.equal(weights(kd_half, 0)["net.1.weight"], weights(hard, 0)["net.1.weight"])


def test_seeds_differ_and_runs_repeat_bit_for_bit(digits, tmp_path):
    params = make_params()
    first = train("hard", params, digits, tmp_path, "first")
    second = train("hard", params, digits, tmp_path, "second")
    assert_same_weights(weights(first, 0), weights(second, 0))
    assert_same_weights(weights(first, 1), weights(second, 1))
    assert not torch.equal(weights(first, 0)["net.1.weight"], weights(first, 1)["net.1.weight"])
    assert not any((tmp_path / ".cache" / "checkpoints" / "hard").iterdir()), "without keep_runs: runs deleted"


@pytest.fixture
def trained(monkeypatch) -> list[int]:
    """The seeds the Trainer trains, in order (a kept run that is reused trains none)."""
    import distillery.training.trainer as trainer

    seeds = []
    train_model = trainer.train_model

    def counting(*args, seed, **kwargs):
        seeds.append(seed)
        return train_model(*args, seed=seed, **kwargs)

    monkeypatch.setattr(trainer, "train_model", counting)
    return seeds


def test_more_seeds_train_only_the_new_ones(digits, tmp_path, trained):
    one = train("hard", make_params(train={"seeds": [0]}), digits, tmp_path, "students", keep_runs=True)
    seed_0 = weights(one, 0)
    two = train("hard", make_params(train={"seeds": [0, 1]}), digits, tmp_path, "students", keep_runs=True)
    assert trained == [0, 1]
    assert_same_weights(weights(two, 0), seed_0)
    kept = list((tmp_path / ".cache" / "checkpoints" / "hard").iterdir())
    assert len(kept) == 2
    for run in kept:  # without the Trainer's checkpoints
        assert sorted(p.name for p in run.iterdir()) == ["model", "selection.json"]

    shutil.rmtree(tmp_path / ".cache")  # the same seeds trained together from nothing: the same bits
    fresh = train("hard", make_params(train={"seeds": [0, 1]}), digits, tmp_path, "fresh", keep_runs=True)
    for seed in (0, 1):
        assert_same_weights(weights(fresh, seed), weights(two, seed))

    trained.clear()  # other params: both seeds train again, and the runs kept for "students" before are deleted
    train("hard", make_params(train={"seeds": [0, 1]}), digits, tmp_path, "students", keep_runs=True)
    other = train("hard", make_params(train={"seeds": [0, 1], "learning_rate": 0.02}), digits, tmp_path, "students",
                  keep_runs=True)
    assert trained == [0, 1]
    assert not torch.equal(weights(other, 0)["net.1.weight"], seed_0["net.1.weight"])
    assert len(list((tmp_path / ".cache" / "checkpoints" / "hard").iterdir())) == 2


def test_a_finished_hard_run_is_not_reused_for_other_inputs_with_the_same_ids_and_labels(digits, tmp_path, trained):
    """The hard students have no teacher logits to tell two datasets apart: another scaling of the same rows, or
    another class list, must train anew, not reuse the run kept from before (a wrong hard baseline)."""
    import dataclasses

    params = make_params(train={"seeds": [0]})
    first = weights(train("hard", params, digits, tmp_path, "students", keep_runs=True), 0)
    rescaled = dataclasses.replace(digits, splits={name: dataclasses.replace(split, inputs=split.inputs * 0.5)
                                                   for name, split in digits.splits.items()})
    other = weights(train("hard", params, rescaled, tmp_path, "students", keep_runs=True), 0)
    renamed = dataclasses.replace(digits, label_names=[f"digit {name}" for name in digits.label_names])
    train("hard", params, renamed, tmp_path, "students", keep_runs=True)
    assert trained == [0, 0, 0]
    assert not torch.equal(other["net.1.weight"], first["net.1.weight"])
    train("hard", params, renamed, tmp_path, "students", keep_runs=True)  # the same inputs again: reused
    assert trained == [0, 0, 0]


def test_ce_and_kd_terms_are_logged_separately(digits, tmp_path):
    params = make_params(train={"seeds": [0]})
    (tmp_path / "l").mkdir()
    fake_teacher_logits(digits, tmp_path / "l")
    train("kd", params, digits, tmp_path, "kd", tmp_path / "l", live_root=tmp_path / "live")
    metrics = tmp_path / "live" / "seed_0" / "plots" / "metrics"
    import pandas as pd

    ce = pd.read_csv(metrics / "ce.tsv", sep="\t")
    kd = pd.read_csv(metrics / "kd.tsv", sep="\t")
    loss = pd.read_csv(metrics / "loss.tsv", sep="\t")
    acc = pd.read_csv(metrics / "eval" / "accuracy.tsv", sep="\t")
    assert ce["step"].tolist() == kd["step"].tolist() == loss["step"].tolist() == [10, 20, 30, 40]
    assert acc["step"].tolist() == [20, 40]  # evaluated every 20 steps
    # loss = 0.5*ce + 0.5*kd, each averaged over the same 10 steps
    np.testing.assert_allclose(loss["loss"], 0.5 * ce["ce"] + 0.5 * kd["kd"], rtol=1e-3)
    assert ((acc["accuracy"] >= 0) & (acc["accuracy"] <= 1)).all()


def test_top_k_logits_reach_the_loss_rebuilt_at_kd_t(digits, tmp_path, monkeypatch):
    """k = C − 1 files rebuild the full logits exactly: the same student as from full logits; and the files are
    read for the method's temperature (kd.T)."""
    import distillery.training.students as students

    params = make_params(train={"seeds": [0]}, kd={"T": 3.0})
    (tmp_path / "full").mkdir(), (tmp_path / "top").mkdir()
    fake_teacher_logits(digits, tmp_path / "full")
    for name, split in digits.splits.items():
        full = students.read_logits(tmp_path / "full" / f"{name}.parquet", split.ids)
        write_logits(tmp_path / "top" / f"{name}.parquet", split.ids, full, top_k=digits.num_labels - 1)
    temperatures = []
    monkeypatch.setattr(students, "read_logits",
                        lambda *args: temperatures.append(args[3]) or read_logits(*args))
    full = train("kd", params, digits, tmp_path, "full_student", tmp_path / "full")
    top = train("kd", params, digits, tmp_path, "top_student", tmp_path / "top")
    assert temperatures == [3.0] * 4
    assert_same_weights(weights(full, 0), weights(top, 0))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_seeds_trained_side_by_side_are_the_same_files_as_one_after_the_other(digits, tmp_path, one_torch_thread):
    (tmp_path / "l").mkdir()
    fake_teacher_logits(digits, tmp_path / "l")
    out = {}
    for processes in (1, 2):
        params = make_params(train={"seeds": [0, 1, 2]}, compute={"seed_processes": processes})
        out[processes] = (train("kd", params, digits, tmp_path, f"students_{processes}", tmp_path / "l",
                                live_root=tmp_path / f"live_{processes}"), tmp_path / f"live_{processes}")
    models, curves = (_files(root) for root in out[1])
    assert [name for name in models if name.endswith(".safetensors")] == \
        [f"seed_{s}/model.safetensors" for s in (0, 1, 2)]
    assert "seed_2/plots/metrics/kd.tsv" in curves
    assert _files(out[2][0]) == models
    assert _files(out[2][1]) == curves


def test_a_seed_that_fails_in_its_own_process_stops_the_stage_with_its_error(digits, tmp_path, monkeypatch,
                                                                             one_torch_thread):
    import distillery.training.students as students

    def seed_1_fails(run_dir, make_model, seed, **kwargs):
        if seed == 1:
            raise students.DistilleryError("seed 1 could not train")
        return train_once(run_dir, make_model, seed=seed, **kwargs)

    train_once = students.train_once
    monkeypatch.setattr(students, "train_once", seed_1_fails)  # inherited by the forked processes
    params = make_params(compute={"seed_processes": 2})
    with pytest.raises(students.DistilleryError, match="seed 1 could not train"):
        train("hard", params, digits, tmp_path, "students")
    assert not (tmp_path / "students").exists()  # nothing published


@pytest.mark.parametrize("compute, threads, device, expected", [
    ({"seed_processes": "auto"}, 1, "cpu", 2),           # one per core (2 here), at most one per seed
    ({"seed_processes": "auto"}, 2, "cpu", 1),           # torch ran several threads: forking would hang
    ({"seed_processes": "auto"}, 1, "cuda", 1),          # a GPU trains the seeds one after the other
    ({"seed_processes": "auto", "processes": 2}, 1, "cpu", 1),
    ({"seed_processes": 1}, 1, "cpu", 1),
    ({"seed_processes": 8}, 1, "cpu", 3),                # at most one per seed
])
def test_seed_processes(compute, threads, device, expected, monkeypatch):
    import distillery.models.inference as inference
    import distillery.training.students as students

    monkeypatch.setattr(students, "cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(inference, "best_device", lambda: torch.device(device))
    params = make_params(train={"seeds": [0, 1, 2]}, compute=compute)
    assert students.seed_processes(params, 3) == expected


def test_seed_processes_asked_for_on_a_gpu_stop_before_training(monkeypatch):
    import distillery.models.inference as inference
    import distillery.training.students as students

    monkeypatch.setattr(inference, "best_device", lambda: torch.device("cuda"))
    with pytest.raises(students.DistilleryError, match="compute.seed_processes = 2: forks CPU processes, and this run "
                                                      "trains on cuda"):
        students.seed_processes(make_params(compute={"seed_processes": 2}), 2)
