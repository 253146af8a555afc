"""Adaptive sweeps: an Optuna study whose every trial is a DVC experiment (``make tune``).

``python -m distillery.experiments.tune [--jobs N] [--trials N]``, driven by the ``tune`` block of params.yaml:

1. checks the block (``distillery.params``) and opens the study ``tune.study`` in ``tune.storage``,
   created or loaded to resume it, before any work; refuses untracked pipeline code as ``make sweep`` does;
2. reproduces the workspace, so every trial restores the teacher, its logits and the hard baseline
   from the DVC cache;
3. runs ``--jobs`` workers on the storage until the budget (``tune.trials``, or ``--trials``) is spent:
   each trial samples ``tune.space``, runs ``dvc exp run --temp --name <study>-<number> -S ++key=value ...``
   (a temporary copy of the repository, so workers run side by side) and reports ``tune.metric`` of that
   experiment's reports/metrics.json to the study;
4. writes the sweep report with the tuning section (``distillery.experiments.sweep_report``) and prints the
   ``dvc exp apply`` of the best trial.

Workers on other machines started against the same database URL share the study (Optuna's distributed
mode). Each running trial sends a heartbeat; a trial silent for 3 x ``tune.heartbeat_seconds`` (its worker
was killed) is marked failed by the next worker that starts a trial, and its params are run once more.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import yaml

from ..cli import interrupted_quietly, quiet_torchao
from ..errors import DistilleryError, exit_on_error
from .study import apply_command, best
from .sweep import refuse_data_a_copy_lacks, refuse_unread, refuse_untracked, with_point

METRICS_FILE = "reports/metrics.json"
MAX_RETRY = 1  # a killed worker's trial is run once more; a second kill leaves it failed (and counted)
INTERRUPTED = "interrupted"  # user attr of a trial Ctrl-C stopped: not charged to the budget, its params run again
DVC_INTERRUPTED = (252, 130, -2)  # `dvc exp run`'s exit status when it took the Ctrl-C itself, or SIGINT's


def load_tune(path: Path = Path("params.yaml")) -> tuple[dict, dict]:
    """The validated ``tune`` block and its parsed space (``distillery.params.tune_space``), refusing a param of
    the space that no method the trials may run reads (``sweep.refuse_unread``)."""
    from ..methods import get_method
    from ..params import load_params, tune_space

    params = load_params(path)
    space = tune_space(params, yaml.safe_load(path.read_text()), str(path))
    methods = space["kd.method"][1] if "kd.method" in space else [params["kd"]["method"]]
    unread = [key for key in space if not any(get_method(name).reads(key) for name in methods)]
    if unread:
        refuse_unread(unread, get_method(methods[0]), f"{path}: tune.space")
    return params["tune"], space


def open_storage(tune: dict):
    """Optuna's RDB storage at ``tune.storage`` with heartbeats; an unusable URL raises ``DistilleryError``."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = tune["storage"]
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}  # workers wait for the write lock
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=tune["heartbeat_seconds"],
                              grace_period=3 * tune["heartbeat_seconds"],
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
        except Exception as exc:  # sqlalchemy/driver errors: a missing directory, server, driver or bad URL
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistilleryError(f"params.yaml: tune.storage = {url!r}: cannot be opened: {first}") from None


def open_study(tune: dict, storage):
    """The study ``tune.study`` (created, or loaded to resume); a stored study's direction, metric and space (its
    user attributes ``metric`` and ``space``, set when it is created) must match: its trials' values are that
    metric's, their params drawn from that space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=tune["study"], direction=tune["direction"],
                                load_if_exists=True)
    stored = study.direction.name.lower()
    if stored != tune["direction"]:
        raise DistilleryError(f"params.yaml: tune.direction = {tune['direction']!r}: the study {tune['study']!r} in "
                              f"{tune['storage']} was created to {stored}; name another tune.study")
    scored = study.user_attrs.get("metric")
    if scored is None:
        study.set_user_attr("metric", tune["metric"])
    elif scored != tune["metric"]:
        raise DistilleryError(f"params.yaml: tune.metric = {tune['metric']!r}: the study {tune['study']!r} in "
                              f"{tune['storage']} scored its trials on {scored!r}, so its best trial and report would "
                              "mix the two; name another tune.study (or set tune.metric back)")
    space = json.loads(json.dumps(tune["space"]))  # as stored: lists and dicts of plain values
    searched = study.user_attrs.get("space")
    if searched is None:
        study.set_user_attr("space", space)
    elif searched != space:
        raise DistilleryError(f"params.yaml: tune.space = {space}: the study {tune['study']!r} in {tune['storage']} "
                              f"searched {searched}, and TPE would model the new trials on the old ones' params; "
                              "name another tune.study (or set tune.space back)")
    return study


def make_sampler(tune: dict, number: int):
    """The sampler of trial ``number``: seeded from ``tune.seed`` and the number, so a trial's params depend on
    the seed, its number and the finished trials, not on which worker or machine runs it."""
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([tune["seed"], number]).generate_state(1)[0])
    if tune["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune["startup_trials"], constant_liar=True)


def spent(trials, before: int | None = None) -> int:
    """Trials that count against the budget (numbered below ``before`` if given): every trial but pruned ones
    (never run: over budget), failed ones that were run again (a killed worker's trial and its retry count once)
    and the ones Ctrl-C stopped (run again by the next ``make tune``: ``requeue_interrupted``)."""
    from optuna.trial import TrialState

    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if (before is None or t.number < before) and t.state != TrialState.PRUNED
               and not (t.state == TrialState.FAIL and (t.number in retried or t.user_attrs.get(INTERRUPTED))))


def suggest(trial, path: str, dimension: tuple):
    """The trial's value of one param from its parsed ``tune.space`` entry."""
    kind, *args = dimension
    if kind == "choices":
        return trial.suggest_categorical(path, args[0])
    low, high, log = args
    if kind == "int":
        return trial.suggest_int(path, low, high, log=log)
    return trial.suggest_float(path, float(low), float(high), log=log)


def experiment_rev(name: str) -> str:
    """The commit of experiment ``name`` (the newest when several baselines hold one of that name)."""
    listing = subprocess.run(["git", "for-each-ref", "--sort=-committerdate", "--format=%(objectname) %(refname)",
                              "refs/exps"], capture_output=True, text=True, check=True).stdout.split("\n")
    revs = [line.split()[0] for line in listing if line.endswith(f"/{name}")]
    if not revs:
        raise DistilleryError(f"experiment {name!r}: no refs/exps entry after `dvc exp run` succeeded")
    return revs[0]


def metric_value(metrics: dict, path: str, where: str) -> float:
    """``metrics[a][b]`` for ``path`` ``a.b``; a missing or non-numeric one names ``tune.metric``."""
    node = metrics
    for name in path.split("."):
        if not isinstance(node, dict) or name not in node:
            raise DistilleryError(f"params.yaml: tune.metric = {path!r}: not in {where}")
        node = node[name]
    if not isinstance(node, (int, float)) or isinstance(node, bool):
        raise DistilleryError(f"params.yaml: tune.metric = {path!r}: {node!r} in {where} is not a number")
    return float(node)


def _override(path: str, value) -> str:
    """``-S`` argument for DVC: ``++`` adds the key when params.yaml leaves it to its default."""
    return f"++{path}={value if isinstance(value, str) else json.dumps(value)}"


def run_experiment(trial, overrides: dict, tune: dict) -> float:
    """Run the pipeline as experiment ``<study>-<number>`` with ``overrides``; the trial's value."""
    name = f"{tune['study']}-{trial.number}"
    trial.set_user_attr("experiment", name)
    trial.set_user_attr("host", socket.gethostname())
    print(f"tune: trial {trial.number} ({name}): " + " ".join(f"{k}={v}" for k, v in overrides.items()), flush=True)
    cmd = ["dvc", "--wait-for-lock", "exp", "run", "--temp", "--name", name,
           *(arg for path, value in overrides.items() for arg in ("-S", _override(path, value)))]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode in DVC_INTERRUPTED:  # DVC took the Ctrl-C before this process did
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        trial.set_user_attr(INTERRUPTED, True)
        raise
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        trial.set_user_attr("error", tail)
        raise DistilleryError(f"trial {trial.number} ({name}): `{' '.join(cmd)}` failed:\n{tail}")
    rev = experiment_rev(name)
    trial.set_user_attr("rev", rev)
    shown = subprocess.run(["git", "show", f"{rev}:{METRICS_FILE}"], capture_output=True, text=True, check=True)
    value = metric_value(json.loads(shown.stdout), tune["metric"], f"{METRICS_FILE} of experiment {name}")
    print(f"tune: trial {trial.number} ({name}): {tune['metric']} = {value:.6g}", flush=True)
    return value


def work(tune: dict, space: dict, budget: int) -> None:
    """One worker: take trials of the study until ``budget`` trials are spent (by all workers together)."""
    import optuna

    study = open_study(tune, open_storage(tune))

    def objective(trial):
        if spent(study.get_trials(deepcopy=False), before=trial.number) >= budget:
            study.stop()  # another worker took the last trial between this one's check and its ask
            raise optuna.TrialPruned("over budget: not run")
        study.sampler = make_sampler(tune, trial.number)
        return run_experiment(trial, {path: suggest(trial, path, dim) for path, dim in space.items()}, tune)

    def stop_when_spent(study, _trial):
        if spent(study.get_trials(deepcopy=False)) >= budget:
            study.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, callbacks=[stop_when_spent], catch=(DistilleryError,))


def requeue_interrupted(study) -> None:
    """Queue the params of each trial Ctrl-C stopped to run again, once (as a killed worker's trial is)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    queued = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED) and t.number not in queued:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})


class QuietInterrupt(logging.Filter):
    """Drop Optuna's two warnings on a trial Ctrl-C stopped (its traceback, then its value): the command says it
    was interrupted in one line, and the next ``make tune`` runs the trial again."""

    def __init__(self):
        super().__init__()
        self.trials = set()

    def filter(self, record: logging.LogRecord) -> bool:
        number = record.getMessage().split()[1] if record.getMessage().startswith("Trial ") else None
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.trials.add(number)
            return False
        return number not in self.trials


def refuse_taken_names(study, tune: dict) -> None:
    """A new study must not reuse the experiment names of an earlier study of that name (removed storage)."""
    if study.get_trials(deepcopy=False):
        return
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                          text=True).stdout.split()
    taken = sorted({r.rsplit("/", 1)[-1] for r in refs if r.rsplit("/", 1)[-1].startswith(f"{tune['study']}-")})
    if taken:
        raise DistilleryError(f"params.yaml: tune.study = {tune['study']!r}: the study is new in {tune['storage']} but "
                              f"experiments of that name exist ({', '.join(taken[:5])}): name another study, or "
                              f"`dvc exp remove {' '.join(taken[:5])}`")


def run_tune(jobs: int, trials: int | None) -> int:
    """Run the study to its budget with ``jobs`` workers here; write the report; 1 if a trial failed, else 0."""
    import optuna
    from optuna.trial import TrialState

    from .sweep_report import write_report

    tune, space = load_tune()
    data = yaml.safe_load(Path("params.yaml").read_text()).get("data", {})
    changed = sorted(key for key in space if key.startswith("data."))
    refuse_data_a_copy_lacks(changed, [data, *(with_point(data, {key: value}) for key in changed
                                               if space[key][0] == "choices" for value in space[key][1])])
    budget = trials or tune["trials"]
    study = open_study(tune, open_storage(tune))
    refuse_untracked()
    refuse_taken_names(study, tune)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, its params queued again
    requeue_interrupted(study)
    failed_before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    done = spent(study.get_trials(deepcopy=False)) - waiting
    remaining = budget - done
    print(f"tune: study {tune['study']!r} in {tune['storage']}: {done} of {budget} trials spent", flush=True)
    if remaining > 0:
        print("tune: reproducing the workspace so shared stages run once (dvc repro)", flush=True)
        if subprocess.run(["dvc", "repro"]).returncode != 0:
            raise DistilleryError("`dvc repro` of the workspace failed (output above); no trial was run")
        metric_value(json.loads(Path(METRICS_FILE).read_text()), tune["metric"], f"the workspace's {METRICS_FILE}")
        command = [sys.executable, "-m", "distillery.experiments.tune", "--worker", "--trials", str(budget)]
        others = [subprocess.Popen(command) for _ in range(min(jobs, remaining) - 1)]
        try:
            work(tune, space, budget)
        except KeyboardInterrupt:  # the workers too (a terminal's Ctrl-C reaches them all; a `kill -INT` this one)
            for worker in others:
                worker.send_signal(signal.SIGINT)
            raise
        finally:
            codes = [p.wait() for p in others]
        if any(codes):
            raise DistilleryError(f"a worker exited with status {max(codes)} (output above)")
    trials_now = study.get_trials(deepcopy=False)
    failed = [t for t in trials_now if t.state == TrialState.FAIL][failed_before:]
    for t in failed:
        print(f"tune: trial {t.number} ({t.user_attrs.get('experiment')}) failed:\n{t.user_attrs.get('error', '')}",
              file=sys.stderr)
    top = best(study)
    baseline = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    names = [t.user_attrs["experiment"] for t in trials_now if t.state == TrialState.COMPLETE]
    write_report(names, rev=baseline, study=study, tune={**tune, "trials": budget})  # TRIALS overrides tune.trials
    if top:
        settings = ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}" for k, v in top["params"].items())
        print(f"tune: best trial {top['number']} ({top['experiment']}): {tune['metric']} = {top['value']:.6g} "
              f"with {settings}\napply it: {apply_command(top)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.tune",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="workers on this machine (default 1)")
    parser.add_argument("--trials", type=int, default=None, help="the budget (default: tune.trials)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of run_tune's workers
    args = parser.parse_args(argv)
    quiet_torchao()  # the params schema imports the methods, hence torch
    logging.getLogger("optuna.study._optimize").addFilter(QuietInterrupt())
    with interrupted_quietly(None if args.worker else "`make tune` resumes the study, running the interrupted "
                             "trials again"):
        code = _run(args)
    sys.exit(code)


def _run(args) -> int:
    """The command's work: the study here (``run_tune``), or one of its workers (``--worker``); the exit status."""
    with exit_on_error():
        if args.jobs < 1:
            raise DistilleryError(f"JOBS = {args.jobs}: must be >= 1")
        if args.trials is not None and args.trials < 1:
            raise DistilleryError(f"TRIALS = {args.trials}: must be >= 1 (it overrides tune.trials)")
        if not args.worker:
            return run_tune(args.jobs, args.trials)
        tune, space = load_tune()
        work(tune, space, args.trials or tune["trials"])
        return 0


if __name__ == "__main__":
    main()
