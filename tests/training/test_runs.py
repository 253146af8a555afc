"""The run lifecycle: which checkpoint is used after a crash, how DVCLive curves are cut back to it, and
timings kept out of the curves."""
import ast
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from distillery.io import fingerprint
from distillery.training import runs
from distillery.training.runs import (CURVES, PUBLISHED, TIMINGS, data_key, is_timing, keep_published,
                                      last_complete_checkpoint, live_callback, run_conditions, source_digest,
                                      truncate_curves)

from ..conftest import REPO, make_params


def checkpoint(root, step, state=True, broken=False):
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text('{"global_st' if broken else json.dumps({"global_step": step}))
    return path


def test_newest_complete_checkpoint_is_used_and_incomplete_ones_removed(tmp_path):
    assert last_complete_checkpoint(tmp_path / "nothing") is None
    good = checkpoint(tmp_path, 20)
    checkpoint(tmp_path, 40, state=False)  # killed before trainer_state.json was written
    checkpoint(tmp_path, 60, broken=True)  # killed while writing it
    assert last_complete_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-20"]


def test_curves_are_cut_back_to_the_resumed_step(tmp_path):
    metrics = tmp_path / "plots/metrics"
    (metrics / "eval").mkdir(parents=True)
    pd.DataFrame({"step": [10, 20, 30], "loss": [3.0, 2.0, 1.0]}).to_csv(metrics / "loss.tsv", sep="\t", index=False)
    pd.DataFrame({"step": [20], "accuracy": [0.5]}).to_csv(metrics / "eval/accuracy.tsv", sep="\t", index=False)
    truncate_curves(tmp_path, 20)
    assert pd.read_csv(metrics / "loss.tsv", sep="\t").to_dict("list") == {"step": [10, 20], "loss": [3.0, 2.0]}
    assert pd.read_csv(metrics / "eval/accuracy.tsv", sep="\t").to_dict("list") == {"step": [20], "accuracy": [0.5]}


@pytest.mark.parametrize("summary", ['{"step": 50, "lo', ""])  # killed while DVCLive rewrote it, or before
def test_what_a_kill_left_half_written_is_cut_away_and_the_run_resumes_its_curves(tmp_path, summary):
    live = tmp_path / CURVES
    metrics = live / "plots/metrics"
    metrics.mkdir(parents=True)
    (metrics / "loss.tsv").write_text("step\tloss\n10\t3.0\n20\t2.0\n30\t1.0\n4")  # step 40's line cut short
    (metrics / "ce.tsv").write_text("st")  # killed while writing its first line
    (live / "metrics.json").write_text(summary)
    (live / "params.yaml").write_text("learning_rate: 0.01\n")  # whole: kept
    callback = live_callback(tmp_path, resume_step=20)  # cuts the curves back to step 20, then DVCLive resumes
    assert callback.live.summary == {}
    assert (metrics / "loss.tsv").read_text() == "step\tloss\n10\t3.0\n20\t2.0\n"
    assert not (metrics / "ce.tsv").exists()
    assert (live / "params.yaml").exists()
    (metrics / "loss.tsv").write_text("step\tloss\n10\t3.0\n2")  # the cut line alone
    truncate_curves(live, 20)
    assert (metrics / "loss.tsv").read_text() == "step\tloss\n10\t3.0\n"


def test_timings_and_the_call_s_mean_loss_go_to_their_own_file_and_not_into_the_curves(tmp_path):
    from transformers import TrainerControl, TrainerState

    callback = live_callback(tmp_path, resume_step=None)
    callback._initialized = True  # skip logging the TrainingArguments: none here
    state, control = TrainerState(), TrainerControl()
    for step, logs in [(10, {"loss": 2.0}), (20, {"eval_loss": 1.5, "eval_runtime": 0.3, "eval_samples_per_second": 9.0}),
                       (20, {"train_runtime": 4.0, "train_steps_per_second": 5.0, "train_loss": 1.8})]:
        state.global_step = step
        callback.on_log(None, state, control, logs=logs)
    callback.on_train_end(None, state, control)
    curves = tmp_path / CURVES
    assert json.loads((curves / "metrics.json").read_text()) == {"loss": 2.0, "step": 20, "eval": {"loss": 1.5}}
    assert sorted(p.relative_to(curves / "plots/metrics").as_posix() for p in curves.rglob("*.tsv")) == [
        "eval/loss.tsv", "loss.tsv"]
    assert json.loads((tmp_path / TIMINGS).read_text()) == {  # and the mean loss of this call: a resumed run's differs
        "20": {"eval_runtime": 0.3, "eval_samples_per_second": 9.0, "train_runtime": 4.0, "train_steps_per_second": 5.0,
               "train_loss": 1.8}}


def test_curves_gather_no_studio_payload_without_studio(tmp_path, monkeypatch):
    """DVCLive would parse the run's params and every curve at each log call for Studio, configured or not."""
    from dvclive import Live
    from transformers import TrainerControl, TrainerState

    for name in ("DVC_STUDIO_TOKEN", "STUDIO_TOKEN", "DVC_STUDIO_REPO_URL", "STUDIO_REPO_URL"):
        monkeypatch.delenv(name, raising=False)
    gathered = []
    monkeypatch.setattr(Live, "_get_live_data", lambda self: gathered.append(self.step) or {})
    callback = live_callback(tmp_path, resume_step=None)
    callback._initialized = True
    state, control = TrainerState(), TrainerControl()
    for step in (10, 20, 30):
        state.global_step = step
        callback.on_log(None, state, control, logs={"loss": 1.0 / step})
    assert gathered == []
    assert pd.read_csv(tmp_path / CURVES / "plots/metrics/loss.tsv", sep="\t")["step"].tolist() == [10, 20, 30]
    callback.live._studio_events_to_skip.discard("data")  # Studio configured: its payload goes as before
    callback.on_log(None, state, control, logs={"loss": 0.01})
    assert gathered == [30]


def test_the_curves_params_hold_the_trainer_settings_but_not_the_run_directory(tmp_path):
    """The run directory is named by the run's fingerprint: in the curves, it would tie their bytes to it."""
    import yaml
    from transformers import TrainerState, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / ".cache/checkpoints/kd/0123456789abcdef/trainer"),
                             max_steps=7, report_to="none")
    state = TrainerState()
    state.is_world_process_zero = True
    callback = live_callback(tmp_path, resume_step=None)
    callback.setup(args, state, None)
    callback.live.end()
    params = yaml.safe_load((tmp_path / CURVES / "params.yaml").read_text())
    assert params["max_steps"] == 7 and "output_dir" not in params


def test_a_run_ends_when_another_process_removed_the_step_signal_first(tmp_path, monkeypatch):
    """Seeds trained side by side end at about the same time: DVCLive sees the workspace's step signal exists, another
    process removes it, and removing it fails. Simulated: DVCLive's check says yes, the file is already gone."""
    from types import SimpleNamespace

    from dvclive import vscode

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    callback = live_callback(tmp_path / "run", resume_step=None)
    callback.live.next_step()  # writes the signal, as every logging step does
    signal = tmp_path / ".dvc/tmp/exps/run" / runs.STEP_SIGNAL
    assert signal.exists()
    signal.unlink()  # the other process's run ended first, just after this one looked
    gone = {str(signal), str(tmp_path / "other")}
    path = SimpleNamespace(join=os.path.join, exists=lambda p: p in gone or os.path.exists(p))
    monkeypatch.setattr(vscode, "os", SimpleNamespace(path=path, remove=os.remove, getenv=os.getenv))
    callback.live.end()
    monkeypatch.setattr(vscode, "_dvclive_step_completed_signal_file", lambda root: str(tmp_path / "other"))
    with pytest.raises(FileNotFoundError):  # any other missing file is still an error
        callback.live.end()


def test_no_committed_result_holds_a_timing():
    """Timings differ run to run: in a committed output they would show as modified after every `make repro`."""
    tracked = subprocess.run(["git", "ls-files", "reports", "dvc.lock"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert "reports/metrics.json" in tracked and not any(path.startswith("reports/timings/") for path in tracked)

    def keys(value, prefix=""):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield from keys(inner, f"{prefix}{key}.")
        yield prefix.rstrip(".")

    timed = [path for path in tracked if is_timing(path.rsplit("/", 1)[-1].removesuffix(".tsv"))]
    for path in tracked:
        if path.endswith(".json"):
            timed += [f"{path}: {key}" for key in keys(json.loads((REPO / path).read_text()))
                      if is_timing(key.rsplit(".", 1)[-1]) or key.endswith(("_per_s", "seconds", "latency_ms"))]
    assert timed == []


def test_timings_are_copied_beside_the_curves_outside_git(tmp_path, monkeypatch):
    from distillery.training.runs import save_timings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / TIMINGS).write_text('{"20": {"train_runtime": 4.0}}')
    save_timings(tmp_path / "run", "reports/training/kd/seed_0")
    save_timings(tmp_path / "run", tmp_path / "curves/seed_1")
    save_timings(tmp_path / "nothing", "reports/training/hard/seed_0")  # no timings logged: nothing written
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json") if "run" not in p.parts) == [
        "curves/seed_1.timings.json", "reports/timings/training/kd/seed_0.json"]


def test_a_runs_conditions_leave_out_the_other_seeds_and_hold_the_numerics(monkeypatch):
    key = fingerprint(run_conditions(make_params(train={"seeds": [0, 1]})))
    assert fingerprint(run_conditions(make_params(train={"seeds": [0, 1, 2, 3]}))) == key
    for other in ({"cpu_threads": 2}, {"reproducible_cpu": "native"}, {"train": {"learning_rate": 0.5}}):
        assert fingerprint(run_conditions(make_params(**other))) != key, other
    native = make_params(reproducible_cpu="native")
    before = fingerprint(run_conditions(native))
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # another CPU's kernels in force, as the variable says
    assert fingerprint(run_conditions(native)) != before


def test_the_data_key_holds_the_inputs_labels_classes_and_text_of_the_splits(digits):
    import dataclasses

    import datasets

    train, val = digits.splits["train"], digits.splits["validation"]
    key = data_key(digits, train, val)
    assert data_key(digits, train, val) == key
    scaled = dataclasses.replace(train, inputs=train.inputs * 2)
    column_dropped = dataclasses.replace(train, inputs=train.inputs.reshape(len(train.ids), -1)[:, :-1].copy())
    relabelled = dataclasses.replace(val, labels=val.labels[::-1].copy())
    for other in (data_key(digits, scaled, val), data_key(digits, column_dropped, val),
                  data_key(digits, train, relabelled),
                  data_key(dataclasses.replace(digits, label_names=[*digits.label_names, "extra"]), train, val)):
        assert other != key
    as_float64 = dataclasses.replace(train, inputs=train.inputs.astype(np.float64))
    assert data_key(digits, as_float64, val) != key  # the same values, other bytes and dtype

    def text(sentences):
        table = datasets.Dataset.from_dict({"id": [0, 1], "text": sentences, "label": [0, 1]})
        return dataclasses.replace(train, ids=np.arange(2), labels=np.array([0, 1]), inputs=None, dataset=table)

    assert data_key(digits, text(["good", "bad"])) == data_key(digits, text(["good", "bad"]))
    assert data_key(digits, text(["good", "bad"])) != data_key(digits, text(["Good", "bad"]))


def test_the_source_digest_follows_the_code_of_every_python_file_of_the_package(tmp_path):
    (tmp_path / "methods").mkdir()
    kd = tmp_path / "methods" / "kd.py"
    kd.write_text('"""Hinton et al."""\nT = 4\n\n\ndef loss(x):\n    """The loss."""\n    return x / T\n')
    (tmp_path / "README.md").write_text("not code")
    before = source_digest(tmp_path, cache=None)
    (tmp_path / "README.md").write_text("still not code")
    assert source_digest.__wrapped__(tmp_path, cache=None) == before
    kd.write_text('"""Hinton et al. (2015)."""\nT = 4  # the paper\'s\n\ndef loss(x):\n    """KD."""\n    return (x / T)\n')
    assert source_digest.__wrapped__(tmp_path, cache=None) == before  # docstrings, comments and formatting only
    kd.write_text('"""Hinton et al."""\nT = 2\n\n\ndef loss(x):\n    """The loss."""\n    return x / T\n')
    assert source_digest.__wrapped__(tmp_path, cache=None) != before
    kd.write_text('"""Hinton et al."""\nT = 4\n"""Not a docstring."""\n\n\ndef loss(x):\n    """The loss."""\n    return x / T\n')
    assert source_digest.__wrapped__(tmp_path, cache=None) != before  # a string that is not a docstring is code
    (tmp_path / "methods" / "dkd.py").write_text("T = 4\n")
    kd.write_text('"""Hinton et al."""\nT = 4\n\n\ndef loss(x):\n    """The loss."""\n    return x / T\n')
    assert source_digest.__wrapped__(tmp_path, cache=None) != before  # a new file
    assert run_conditions(make_params())["code"] == source_digest()


def test_the_source_digest_is_kept_until_a_file_changes_comes_or_goes(tmp_path, monkeypatch):
    package, cache = tmp_path / "package", tmp_path / "cache" / "digest.json"
    package.mkdir()
    kd = package / "kd.py"
    kd.write_text("T = 4\n")
    digest = source_digest.__wrapped__(package, cache)
    assert json.loads(cache.read_text())["digest"] == digest
    parsed, parse = [], ast.parse
    monkeypatch.setattr(runs.ast, "parse", lambda *a, **k: parsed.append(a) or parse(*a, **k))
    assert source_digest.__wrapped__(package, cache) == digest and not parsed  # from the cache: nothing parsed
    kd.write_text("T = 2\n")  # same size: the modification time tells
    os.utime(kd, ns=(kd.stat().st_atime_ns, kd.stat().st_mtime_ns + 1))
    changed = source_digest.__wrapped__(package, cache)
    assert changed != digest and len(parsed) == 1
    assert changed == source_digest.__wrapped__(package, None)  # the same digest as without a cache
    (package / "dkd.py").write_text("T = 4\n")
    assert source_digest.__wrapped__(package, cache) != changed  # a new file
    (package / "dkd.py").unlink()
    assert source_digest.__wrapped__(package, cache) == changed  # gone again
    cache.write_text('{"key": ')  # a cache cut short by a kill: computed again
    assert source_digest.__wrapped__(package, cache) == changed


def test_an_output_keeps_the_runs_of_its_latest_publish_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [tmp_path / "runs" / name for name in "abc"]
    for run in runs:
        (run / "model").mkdir(parents=True)
    keep_published(runs[:2], tmp_path / "out")
    keep_published(runs[1:], tmp_path / "out")  # a is no longer published: deleted; b, c kept
    assert [run.exists() for run in runs] == [False, True, True]
    keep_published(runs[2:], tmp_path / "other")  # another output's list leaves this one's alone
    assert runs[1].exists() and len(list(PUBLISHED.iterdir())) == 2


def test_tests_train_outside_the_repository():
    """Module fixtures train before any test's own ``chdir``: the conftest's scratch directory keeps their runs out
    of the repository's ``.cache`` (where two workers had met in one run directory)."""
    cwd = os.getcwd()
    assert not cwd.startswith(str(REPO)), cwd


def test_weights_fingerprint_is_the_weights_bytes_in_any_dtype():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))  # a 0-d int64 buffer too
    assert runs.weights_fingerprint(model) == fingerprint(*(v.numpy() for v in model.state_dict().values()))
    bf16 = runs.weights_fingerprint(model.to(torch.bfloat16))  # no NumPy dtype: read as bytes
    assert bf16 != runs.weights_fingerprint(model.float())
    assert bf16 == runs.weights_fingerprint(model.to(torch.bfloat16))


def test_a_checkpoint_replaced_at_the_same_path_is_another_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt/model.safetensors").write_bytes(b"w1")
    params = make_params() | {"teacher": {"model": {"pretrained": "ckpt"}}}
    first = runs.run_environment(params)
    (tmp_path / "ckpt/model.safetensors").write_bytes(b"w2")
    second = runs.run_environment(params)
    assert list(first["checkpoints"]) == ["ckpt"] and first["checkpoints"] != second["checkpoints"]
    assert fingerprint(first) != fingerprint(second)
    assert "checkpoints" not in runs.run_environment(make_params())  # the default's key as before
