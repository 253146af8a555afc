"""make tune: the tune params, the budget, the per-trial sampler, the report, and a real 2-worker study that is
resumed, survives a killed worker and whose trials are DVC experiments."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState, create_trial

from distillery.errors import DistilleryError
from distillery.params import validate
from distillery.experiments.tune import _override, make_sampler, open_storage, open_study, spent, suggest

from ..conftest import TINY, deep_merge
from ..repo_utils import ENV, copy_repo, run
from .test_sweep import MAKE, _shown

TUNE = {"space": {"kd.T": [1, 8, "log"], "kd.alpha": [0, 1]}, "trials": 2, "startup_trials": 2, "seed": 0,
        "study": "t", "heartbeat_seconds": 5}


@pytest.mark.parametrize(
    "tune, message",
    [
        ({"space": {"kd.alfa": [0, 1]}}, r"tune.space.kd.alfa: unknown param 'kd.alfa'; did you mean 'kd.alpha'\?"),
        ({"space": {"kd.T": [4, 4]}}, r"tune.space.kd.T = \[4, 4\]: empty range"),
        ({"space": {"kd.T": [8, 1]}}, r"tune.space.kd.T = \[8, 1\]: empty range"),
        ({"space": {"kd.T": [0, 8]}}, r"tune.space.kd.T: 0 is not a valid value \(kd.T = 0: must be > 0\)"),
        ({"space": {"kd.alpha": [0, 2]}}, r"tune.space.kd.alpha: 2 is not a valid value \(kd.alpha = 2: must be in"),
        ({"space": {"kd.T": [-1, 8, "log"]}}, r"tune.space.kd.T = \[-1, 8, 'log'\]: a log range needs low > 0"),
        ({"space": {"kd.T": [1, 8, "lin"]}}, r"must be \[low, high\], \[low, high, log\] or \{choices"),
        ({"space": {"kd": [0, 1]}}, r"tune.space.kd: 'kd' is a param group"),
        ({"space": {"kd.method": [0, 1]}}, r"a range needs a numeric param; use \{choices"),
        ({"space": {"kd.method": {"choices": []}}}, r"choices must be a non-empty list"),
        ({"space": {"kd.method": {"choices": ["kd", "kdd"]}}}, r"'kdd' is not a valid value \(kd.method = 'kdd'"),
        ({"space": {"train.max_steps": [10, 20.5]}}, r"20.5 is not a valid value \(train.max_steps = 20.5: must be "
                                                     r"of type int\)"),
        ({"space": {"tune.trials": [1, 5]}}, r"tune.space.tune.trials: the tune block is not a pipeline param"),
        ({"space": {}}, r"tune.space = \{\}: must map at least one param path"),
        ({"trials": 0}, r"tune.trials = 0: must be > 0"),
        ({"metric": "kd.accuracy"}, r"tune.metric = 'kd.accuracy': must name a validation metric"),
        ({"storage": "reports/tune.db"}, r"tune.storage = 'reports/tune.db': must be a database URL"),
        ({"study": "my study"}, r"tune.study = 'my study': must be letters, digits"),
        ({"direction": "up"}, r"tune.direction = 'up': must be one of 'maximize', 'minimize'"),
    ],
)
def test_bad_tune_params_are_refused_naming_the_param(tune, message):
    with pytest.raises(DistilleryError, match=message):
        validate({"tune": tune})


@pytest.mark.parametrize("space, message", [
    ({"kd.dkd.beta": [1, 8]}, "tune.space: kd.method = 'kd' does not read kd.dkd.beta (it reads kd.T, kd.alpha)"),
    ({"kd.method": {"choices": ["kd", "dkd"]}, "kd.dist.beta": [1, 4]}, "does not read kd.dist.beta"),
])
def test_a_space_over_a_param_no_method_of_the_trials_reads_is_refused(tmp_path, space, message):
    """Trials over ``kd.dkd.beta`` with kd.method kd ran, all alike, and the best one was printed with its beta."""
    from distillery.experiments.tune import load_tune

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"tune": {"space": space}}))
    with pytest.raises(DistilleryError, match=re.escape(message)):
        load_tune(path)
    path.write_text(yaml.safe_dump({"tune": {"space": {"kd.method": {"choices": ["kd", "dkd"]},
                                                       "kd.dkd.beta": [1, 8], "kd.alpha": [0, 1]}}}))
    assert set(load_tune(path)[1]) == {"kd.method", "kd.dkd.beta", "kd.alpha"}  # each read by one of the methods


def test_a_storage_that_cannot_be_opened_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    from distillery.experiments import tune

    missing = f"sqlite:///{tmp_path}/no/such/dir/tune.db"
    with pytest.raises(DistilleryError, match=r"tune.storage = '.*/no/such/dir/tune.db': cannot be opened: "
                                              r".*unable to open database file"):
        open_storage(validate({"tune": {"storage": missing}})["tune"])
    (tmp_path / "params.yaml").write_text(json.dumps({"tune": {"storage": missing}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune, "refuse_untracked", lambda: pytest.fail("went on past the storage"))
    with pytest.raises(SystemExit) as exit_:
        tune.main(["--jobs", "2"])
    assert exit_.value.code == 2
    assert "error: params.yaml: tune.storage = " in capsys.readouterr().err


def test_a_study_scored_on_another_metric_or_direction_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/tune.db"
    kd = validate({"tune": {"storage": url, "study": "s"}})["tune"]
    study = open_study(kd, open_storage(kd))
    assert study.user_attrs["metric"] == "kd.validation_accuracy"  # recorded when created
    assert open_study(kd, open_storage(kd)).user_attrs["metric"] == "kd.validation_accuracy"  # resumed: the same
    hard = {**kd, "metric": "hard.validation_accuracy"}
    with pytest.raises(DistilleryError, match=re.escape(
            "tune.metric = 'hard.validation_accuracy': the study 's' in " + url + " scored its trials on "
            "'kd.validation_accuracy', so its best trial and report would mix the two; name another tune.study")):
        open_study(hard, open_storage(hard))
    assert open_study({**hard, "study": "t"}, open_storage(hard)).user_attrs["metric"] == "hard.validation_accuracy"
    with pytest.raises(DistilleryError, match="tune.direction = 'minimize': the study 's' in .* was created to "
                                              "maximize; name another tune.study"):
        open_study({**kd, "direction": "minimize"}, open_storage(kd))
    assert study.user_attrs["space"] == {"kd.T": [1, 20, "log"], "kd.alpha": [0, 1]}  # params.yaml's default space
    wider = {**kd, "space": {"kd.T": [1, 40, "log"], "kd.alpha": [0, 1]}}  # a changed space was mixed in silently
    with pytest.raises(DistilleryError, match=re.escape("tune.space = {'kd.T': [1, 40, 'log'], 'kd.alpha': [0, 1]}: "
                                                        "the study 's' in " + url + " searched {'kd.T': [1, 20, 'log']")):
        open_study(wider, open_storage(wider))


def test_a_space_over_data_with_a_file_a_queued_copy_lacks_is_refused_before_the_study(tmp_path, monkeypatch,
                                                                                          capsys):
    from distillery.experiments import tune

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "wine.csv").write_text("id,label\n")  # untracked: not in the copies trials run in
    storage = f"sqlite:///{tmp_path}/tune.db"
    (tmp_path / "params.yaml").write_text(json.dumps({
        "data": {"source": "file:wine.csv", "label_column": "label", "feature_columns": "all"},
        "tune": {"storage": storage, "space": {"data.scaling": {"choices": ["standard", "minmax"]}}}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        tune.main(["--jobs", "1"])
    assert exit_.value.code == 2
    assert ("error: data.scaling re-runs prepare, and data.source = 'wine.csv' is tracked by neither git nor DVC"
            in capsys.readouterr().err)
    assert not (tmp_path / "tune.db").exists()


@pytest.mark.parametrize("args, message", [(["--jobs", "0"], "JOBS = 0: must be >= 1"),
                                           (["--trials", "0"], "TRIALS = 0: must be >= 1")])
def test_bad_jobs_or_trials_are_refused(args, message, capsys):
    from distillery.experiments import tune

    with pytest.raises(SystemExit) as exit_:
        tune.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def _study_with(*trials) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for state, system_attrs in trials:
        study.add_trial(create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                                     system_attrs=system_attrs))
    return study


def test_budget_counts_each_run_trial_once():
    C, F, R, P, W = TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.PRUNED, TrialState.WAITING
    study = _study_with((C, {}), (F, {}), (R, {}), (P, {}), (F, {}),  # 0..4; trial 4 killed, retried as 5
                        (W, {"failed_trial": 4, "retry_history": [4]}))
    trials = study.get_trials(deepcopy=False)
    # complete 0, failed 1 (a pipeline error: spent), running 2, waiting retry 5; not pruned 3, not retried 4
    assert spent(trials) == 4
    assert spent(trials, before=3) == 3 and spent(trials, before=5) == 3


def test_a_trial_ctrl_c_stopped_is_not_charged_and_runs_again_with_its_params(monkeypatch, caplog):
    """Ctrl-C in `make tune`: the stopped trial was stored as failed and charged to the budget, so the next
    `make tune` said "5 of 5 trials spent" and ran nothing; Optuna printed its traceback on the way."""
    import logging

    from distillery.experiments import tune

    finished = subprocess.CompletedProcess([], 252, "", "ERROR: interrupted by the user")  # DVC took the Ctrl-C
    monkeypatch.setattr(tune.subprocess, "run", lambda *args, **kwargs: finished)
    logging.getLogger("optuna.study._optimize").addFilter(tune.QuietInterrupt())
    study = optuna.create_study(direction="maximize")
    objective = lambda trial: tune.run_experiment(  # noqa: E731
        trial, {"kd.T": trial.suggest_float("kd.T", 1, 8)}, {"study": "s", "metric": "kd.validation_accuracy"})
    with caplog.at_level(logging.WARNING, logger="optuna"), pytest.raises(KeyboardInterrupt):
        study.optimize(objective)
    (stopped,) = study.get_trials(deepcopy=False)
    assert stopped.state == TrialState.FAIL and stopped.user_attrs[tune.INTERRUPTED]
    assert spent(study.get_trials(deepcopy=False)) == 0
    assert not [r for r in caplog.records if r.name.startswith("optuna")]  # no traceback, no "failed with value"
    tune.requeue_interrupted(study)
    tune.requeue_interrupted(study)  # once
    retry = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(retry) == 1 and retry[0].user_attrs["retry_of"] == 0
    assert retry[0].system_attrs["fixed_params"] == stopped.params
    assert spent(study.get_trials(deepcopy=False)) == 1  # the retry is the trial the budget pays for


def test_each_trial_samples_with_its_own_seed_whichever_worker_runs_it():
    tune = validate({"tune": {"space": {"kd.T": [1, 8, "log"], "train.max_steps": [10, 20],
                                        "kd.method": {"choices": ["kd", "dkd"]}}}})
    from distillery.params import tune_space

    space = tune_space(tune, {"tune": tune["tune"]}, "params.yaml")
    assert space == {"kd.T": ("float", 1, 8, True), "train.max_steps": ("int", 10, 20, False),
                     "kd.method": ("choices", ["kd", "dkd"])}

    def draw(number):
        study = optuna.create_study(sampler=make_sampler(tune["tune"], number))
        trial = study.ask()
        return {path: suggest(trial, path, dim) for path, dim in space.items()}, trial.distributions

    first, distributions = draw(3)
    assert draw(3)[0] == first and draw(4)[0] != first
    assert distributions["kd.T"].log and isinstance(first["train.max_steps"], int) and first["kd.method"] in ("kd", "dkd")


TEXT_STUDENT = {"teacher": {"model": {"arch": "hf", "pretrained": "teacher-checkpoint"}},
                "student": {"model": {"arch": "hf", "tokenizer": "teacher",
                                      "config": {"model_type": "bert", "num_hidden_layers": 2}}},
                "data": {"source": "file:sentences.tsv", "text_column": "sentence"}}


def test_a_key_of_a_model_config_is_tuned_as_the_range_its_ends_give():
    """``student.model.config`` is a free mapping (Hugging Face config overrides): its keys have no schema, so a
    range of integers is an integer range (a depth), one with a float end a float range (a dropout)."""
    from distillery.params import tune_space
    from ..conftest import deep_merge

    raw = deep_merge(TEXT_STUDENT, {"tune": {"space": {
        "student.model.config.num_hidden_layers": [1, 4], "student.model.config.hidden_dropout_prob": [0, 0.3],
        "student.model.config.hidden_act": {"choices": ["gelu", "relu"]}}}})
    space = tune_space(validate(raw), raw, "params.yaml")
    assert space == {"student.model.config.num_hidden_layers": ("int", 1, 4, False),
                     "student.model.config.hidden_dropout_prob": ("float", 0, 0.3, False),
                     "student.model.config.hidden_act": ("choices", ["gelu", "relu"])}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    assert isinstance(suggest(trial, "student.model.config.num_hidden_layers", space[
        "student.model.config.num_hidden_layers"]), int)
    assert _override("student.model.config.num_hidden_layers", 3) == "++student.model.config.num_hidden_layers=3"


@pytest.mark.parametrize("space, message", [
    ({"student.model.config.num_hidden_layers": ["1", 4]}, r"the ends of a range must be numbers"),
    ({"student.model.config.model_type": {"choices": ["bert", None]}}, r"choices must be a non-empty list of distinct "
                                                                         r"scalars"),
    ({"student.model.config.model_type": {"choices": ["bert", ""]}}, r"tune.space.student.model.config.model_type: "
                                                                     r"'' is not a valid value \(.*model_type"),
    ({"student.model.arch.depth": [1, 4]}, r"tune.space.student.model.arch.depth: student.model.arch is a param, "
                                           r"not a group"),
])
def test_a_bad_range_on_a_config_key_is_refused_naming_it(space, message):
    from ..conftest import deep_merge

    with pytest.raises(DistilleryError, match=message):
        validate(deep_merge(TEXT_STUDENT, {"tune": {"space": space}}))


def test_overrides_add_keys_params_yaml_leaves_to_their_defaults():
    assert _override("kd.T", 2.5) == "++kd.T=2.5"
    assert _override("train.max_steps", 30) == "++train.max_steps=30"
    assert _override("kd.method", "dkd") == "++kd.method=dkd"


def test_report_gains_the_tuning_section_with_the_best_trial_and_history(tmp_path, monkeypatch):
    from distillery.experiments import study as study_module, sweep_report

    study = optuna.create_study(study_name="s", direction="maximize")
    for number, (T, alpha, value) in enumerate([(2.0, 0.5, 0.70), (4.0, 0.9, 0.80), (1.5, 0.1, 0.75)]):
        study.add_trial(create_trial(params={"kd.T": T, "kd.alpha": alpha}, value=value,
                                     distributions={"kd.T": optuna.distributions.FloatDistribution(1, 8, log=True),
                                                    "kd.alpha": optuna.distributions.FloatDistribution(0, 1)},
                                     user_attrs={"experiment": f"s-{number}"}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"experiment": "s-3", "error": "boom"}))
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: _shown([("s-0", 2.0, 0.5, 0.7, 0.7, None),
                                                                      ("s-1", 4.0, 0.9, 0.8, 0.7, None),
                                                                      ("s-2", 1.5, 0.1, 0.75, 0.7, None)]))
    monkeypatch.setattr(study_module, "apply_command", lambda best: f"dvc exp apply {best['experiment']}")
    params = validate({"tune": {"trials": 5}})["tune"]
    frame, _ = sweep_report.write_report(["s-0", "s-1", "s-2"], report=tmp_path / "sweep.md", plots=tmp_path / "sweep",
                                      study=study, tune=params)
    assert sorted(frame["name"]) == ["s-0", "s-1", "s-2"]
    text = (tmp_path / "sweep.md").read_text()
    tuning = text.split("## Tuning: study `s`")[1]
    assert "4 trials (3 complete, 1 fail) of the budget 5" in tuning
    assert text.startswith("# Sweep\n\n3 trial experiments, 3 with metrics.")
    assert "**Best:** trial 1, experiment `s-1`: `kd.validation_accuracy` = 0.8000 with `kd.T` = 4, `kd.alpha` = 0.9. " \
           "Apply it: `dvc exp apply s-1`" in tuning
    assert "| 3 | fail | — | — | — | `s-3` |" in tuning
    assert "![tuning history](sweep/tune_history.png)" in tuning and "metrics_vs_T" not in text
    assert (tmp_path / "sweep" / "tune_history.png").stat().st_size > 10_000


# ---- end to end: a tiny repo, 4 trials on 2 workers, then a killed worker and a resumed study ----

def _study(repo: Path) -> optuna.Study:
    return optuna.load_study(study_name="t", storage=f"sqlite:///{repo}/reports/tune.db")


def _exp_show(repo: Path) -> dict[str, dict]:
    """Experiment name -> its ``data`` in ``dvc exp show --json``."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    return {e["name"]: e["revs"][0]["data"] for c in shown for e in c.get("experiments") or []}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tiny repo (one seed) after `make tune JOBS=2` with a budget of 2 trials (one each; the sampler's seeds per
    trial: unit tests above)."""
    repo = copy_repo(tmp_path_factory.mktemp("tune"), deep_merge(TINY, {
        "train": {"seeds": [0]}, "tune": TUNE,
        "evaluate": {"bootstrap_samples": 200, "timing_repeats": 1, "timing_warmup": 0}}))
    (repo / "reports").mkdir()
    result = run([*MAKE, "tune", "JOBS=2"], repo)
    (repo / "tune.log").write_text(result.stdout + result.stderr)
    return repo


@pytest.mark.slow
def test_two_workers_complete_the_study_and_every_trial_is_an_experiment(tuned):
    trials = _study(tuned).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert len({t.user_attrs["host"] for t in trials}) == 1
    shown = _exp_show(tuned)
    for t in trials:
        data = shown[f"t-{t.number}"]
        kd = data["params"]["params.yaml"]["data"]["kd"]
        assert (kd["T"], kd["alpha"]) == (t.params["kd.T"], t.params["kd.alpha"])
        metric = data["metrics"]["reports/metrics.json"]["data"]["kd"]["validation_accuracy"]
        assert t.value == metric
    assert len({t.value for t in trials}) > 1, "every trial gave the same validation accuracy"
    best = _study(tuned).best_trial
    log = (tuned / "tune.log").read_text()
    assert f"apply it: dvc exp apply t-{best.number}\n" in log
    queue_log = log.split("tune: trial 0 (t-0): kd.T")[1]
    assert "Running stage 'teacher'" not in queue_log  # trials restore the shared stages from the cache
    report = (tuned / "reports/sweep.md").read_text()
    assert f"**Best:** trial {best.number}, experiment `t-{best.number}`" in report
    assert (tuned / "reports/sweep/tune_history.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_killed_worker_leaves_a_failed_trial_that_the_resumed_study_runs_again(tuned):
    again = run([*MAKE, "tune"], tuned)  # the budget is spent: nothing runs
    assert "2 of 2 trials spent" in again.stdout and "dvc repro" not in again.stdout
    assert len(_study(tuned).get_trials()) == 2
    env = {**ENV, "PYTHONPATH": str(tuned)}
    worker = subprocess.Popen([*MAKE, "tune", "TRIALS=3"], cwd=tuned, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not [t for t in _study(tuned).get_trials() if t.state == TrialState.RUNNING]:
        assert worker.poll() is None and time.time() < deadline, "trial 2 never started"
        time.sleep(1)
    time.sleep(5)  # into `dvc exp run` (a tiny trial can finish within 15 s on an idle machine: a race once seen)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    run(["dvc", "exp", "show"], tuned)  # still works
    time.sleep(3 * TUNE["heartbeat_seconds"] + 1)  # the killed trial's heartbeat is stale
    resumed = run([*MAKE, "tune", "TRIALS=3"], tuned)
    trials = _study(tuned).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.COMPLETE]
    killed, retry = trials[2], trials[3]
    assert retry.system_attrs["failed_trial"] == 2 and retry.params == killed.params
    assert spent(trials) == 3 and re.search(r"2 of 3 trials spent", resumed.stdout)
    assert "t-3" in _exp_show(tuned)
    assert "4 trials (3 complete, 1 fail) of the budget 3" in (tuned / "reports/sweep.md").read_text()  # TRIALS
