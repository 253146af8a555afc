"""Reading an Optuna study of ``make tune`` as results: its best trial and the command that applies it.

Both the tuner (``experiments.tune``) and the sweep report (``experiments.sweep_report``) read these; keeping
them here is what lets the report and the tuner import each other's ground without a circle.
"""
from __future__ import annotations

import subprocess


def best(study) -> dict | None:
    """The best complete trial as ``{number, value, params, experiment, rev, host}``, or None."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    trial = study.best_trial
    return {"number": trial.number, "value": trial.value, "params": trial.params, **trial.user_attrs}


def apply_command(best_trial: dict) -> str:
    """The one command that puts the best trial's params and outputs into the workspace."""
    name = best_trial["experiment"]
    local = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                           text=True).stdout.split()
    if any(ref.endswith(f"/{name}") for ref in local):
        return f"dvc exp apply {name}"
    return f"dvc exp pull origin {name} && dvc exp apply {name}"  # run on another machine
