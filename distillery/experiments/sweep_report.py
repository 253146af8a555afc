"""The sweep report, built from ``dvc exp show --json``: ``reports/sweep.md`` and plots in ``reports/sweep/``.

One row per finished experiment: its name, the params that vary over the experiments (``kd.method``,
``kd.T`` and ``kd.alpha`` always), distilled and hard-label student accuracy and ECE (mean ± std over
seeds, from the experiment's ``reports/metrics.json``) and the distilled − hard accuracy gap. When the
sweep compares methods (``kd.method`` varies) a methods table follows: accuracy, the gap to the hard
students with its paired 95 % interval, ECE, agreement with the teacher and the distill stage's training
time relative to ``kd`` in the same sweep; when ``kd.T`` varies, plots over T. After ``make tune`` the
grid plots give way to the tuning section: the best trial, its params and ``dvc exp apply`` command, every
trial, and the tuning history plot (``reports/sweep/tune_history.png``). Language models (``task: causal_lm``) get
one table instead: perplexities, KD − hard in NLL per token with its interval and the gap closed.
The plots live outside ``reports/plots`` because that directory is the plots stage's output.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DistilleryError
from ..io import DISTILL_SECONDS_LINE
from ..evaluation.wording import counted
from ..methods import get_method
from ..schema import flatten

METRICS_FILE = "reports/metrics.json"
PARAMS_FILE = "params.yaml"
ALWAYS = ("kd.method", "kd.T", "kd.alpha")
LM_KEYS = ("perplexity", "perplexity_std", "validation_perplexity", "validation_perplexity_std", "teacher_agreement",
           "teacher_agreement_std", "rouge_l", "rouge_l_std")  # task causal_lm: what a row shows of each student
LM_COMPARISON = ("kd_minus_hard_nll", "kd_minus_hard_nll_ci_low", "kd_minus_hard_nll_ci_high", "gap_closure",
                 "kd_minus_hard_rouge_l", "kd_minus_hard_rouge_l_ci_low", "kd_minus_hard_rouge_l_ci_high")
REPORT = Path("reports/sweep.md")
PLOTS = Path("reports/sweep")


def experiments(shown: list[dict], names: list[str] | None = None) -> pd.DataFrame:
    """One row per finished experiment in ``dvc exp show --json`` output (dvc 3 layout).

    The JSON is a list of commits (``workspace`` first); each commit's ``experiments`` is a list of
    ``{"name", "executor", "revs": [{"rev", "name", "data": {"params", "metrics", ...}, "error"}]}``.
    Queued, running and failed experiments (no metrics) are skipped.
    """
    rows = []
    for commit in shown:
        for exp in commit.get("experiments") or []:
            if names is not None and exp.get("name") not in names:
                continue
            if (exp.get("executor") or {}).get("state") not in (None, "success"):
                continue
            rev = exp["revs"][0]
            data = rev.get("data") or {}
            metrics = ((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data")
            params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data")
            if rev.get("error") or not metrics or not params:
                continue
            row = {"name": exp.get("name") or rev["rev"][:7], "rev": rev["rev"], "baseline": commit["rev"]}
            row.update({f"param:{k}": v for k, v in flatten(params).items()})
            row.setdefault("param:kd.method", "kd")
            comparison = metrics.get("comparison") or {}
            language_model = "perplexity" in metrics["kd"]
            for kind in ("kd", "hard"):
                for key in LM_KEYS if language_model else ("accuracy", "accuracy_std", "ece", "ece_std", "agreement",
                                                           "agreement_std", "validation_accuracy",
                                                           "validation_accuracy_std"):
                    row[f"{kind}.{key}"] = metrics[kind].get(key)
            if language_model:
                row.update({key: comparison.get(key) for key in LM_COMPARISON})
            else:
                row["gain_ci_low"] = comparison.get("kd_minus_hard_ci_low")
                row["gain_ci_high"] = comparison.get("kd_minus_hard_ci_high")
            rows.append(row)
    if not rows:
        raise DistilleryError("no finished experiments with metrics in `dvc exp show --json` (run `make sweep`)")
    frame = pd.DataFrame(rows)
    if "kd.accuracy" in frame:
        frame["gain"] = frame["kd.accuracy"] - frame["hard.accuracy"]
    return frame.sort_values(["param:kd.method", "param:kd.alpha", "param:kd.T", "name"], ignore_index=True)


def is_language_model(frame: pd.DataFrame) -> bool:
    """Whether the experiments are language models (``task: causal_lm``: perplexities, not accuracies)."""
    return "kd.perplexity" in frame and "kd.accuracy" not in frame


def language_model_table(frame: pd.DataFrame, seconds: dict[str, float | None]) -> str:
    """One row per language-model experiment: the distilled students' validation and test perplexity, the hard
    students' test perplexity, KD − hard in NLL per token (test, paired 95 % interval), the fraction of the
    perplexity gap to the teacher KD closes, agreement with the teacher and the distill time relative to ``kd``;
    with prompts and responses also the distilled students' ROUGE-L on the test answers and KD − hard in it."""
    params = swept_params(frame)
    reference = kd_seconds(frame, seconds)
    answers = "kd.rouge_l" in frame and frame["kd.rouge_l"].notna().any()
    header = ["experiment", *params, "distilled perplexity, validation", "distilled perplexity, test",
              "hard perplexity, test", "KD − hard NLL per token, test (95 % CI)", "gap closed, test",
              "top-1 agreement with teacher",
              *(["distilled ROUGE-L, test", "KD − hard ROUGE-L, test (95 % CI)"] if answers else []),
              "distill time, s", "distill time vs kd"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in frame.iterrows():
        time = seconds.get(r["name"])
        cells = [r["name"], *(_cell(r, p) for p in params),
                 f"{r['kd.validation_perplexity']:.3f} ± {r['kd.validation_perplexity_std']:.3f}",
                 f"{r['kd.perplexity']:.3f} ± {r['kd.perplexity_std']:.3f}",
                 f"{r['hard.perplexity']:.3f} ± {r['hard.perplexity_std']:.3f}",
                 f"{r['kd_minus_hard_nll']:+.4f} ({r['kd_minus_hard_nll_ci_low']:+.4f} to "
                 f"{r['kd_minus_hard_nll_ci_high']:+.4f})", "—" if r["gap_closure"] is None else f"{r['gap_closure']:.2f}",
                 _mean_std(r["kd.teacher_agreement"], r["kd.teacher_agreement_std"]),
                 *(_answer_cells(r) if answers else []), *time_cells(time, reference)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _answer_cells(r) -> list[str]:
    """A language-model row's ROUGE-L cells ("—" for an experiment without prompts)."""
    if pd.isna(r["kd.rouge_l"]):
        return ["—", "—"]
    return [_mean_std(r["kd.rouge_l"], r["kd.rouge_l_std"]),
            f"{r['kd_minus_hard_rouge_l']:+.4f} ({r['kd_minus_hard_rouge_l_ci_low']:+.4f} to "
            f"{r['kd_minus_hard_rouge_l_ci_high']:+.4f})"]


def missing_reason(shown: list[dict], name: str) -> str:
    """Why experiment ``name`` has no row: what ``dvc exp show --json`` says of it (absent, its executor's state,
    its error, or no metrics)."""
    for commit in shown:
        for exp in commit.get("experiments") or []:
            if exp.get("name") != name:
                continue
            state = (exp.get("executor") or {}).get("state")
            rev = exp["revs"][0]
            if rev.get("error"):
                return f"`dvc exp show` reports an error: {rev['error']}"
            if state not in (None, "success"):
                return f"`dvc exp show` lists it as {state}"
            return f"`dvc exp show` lists it without {METRICS_FILE} or {PARAMS_FILE}"
    return "`dvc exp show --json` does not list it on this baseline"


NOT_PIPELINE = ("tune.", "diff.")  # blocks no stage reads (the tuner's and `make diff`'s): another study's space


def swept_params(frame: pd.DataFrame) -> list[str]:
    """``kd.method``, ``kd.T``, ``kd.alpha`` and every other pipeline param whose value differs between
    experiments."""
    varying = [c[6:] for c in frame.columns if c.startswith("param:") and not c[6:].startswith(NOT_PIPELINE)
               and frame[c].map(json.dumps).nunique() > 1 and c[6:] not in ALWAYS]
    return [*ALWAYS, *varying]


def _cell(row, param: str) -> str:
    """A row's value of ``param``, or "—" where the row's method does not read it (``kd.alpha`` for dkd)."""
    return _value(row[f"param:{param}"]) if get_method(row["param:kd.method"]).reads(param) else "—"


def best_on_validation(frame: pd.DataFrame) -> pd.Series | None:
    """The experiment whose distilled students score the highest mean validation accuracy (ties: the first in
    the table), the one to choose; None when no row has that figure (an older metrics schema)."""
    scored = frame.dropna(subset=["kd.validation_accuracy"]) if "kd.validation_accuracy" in frame else frame[:0]
    return None if scored.empty else scored.loc[scored["kd.validation_accuracy"].idxmax()]


def best_line(frame: pd.DataFrame) -> list[str]:
    """The sentence naming the experiment best on validation, with its test figures for the record."""
    top = best_on_validation(frame)
    if top is None:
        return []
    cells = {p: _cell(top, p) for p in swept_params(frame)}
    setting = ", ".join(f"`{p}` = {cell}" for p, cell in cells.items() if cell != "—")
    return [f"**Best on validation:** `{top['name']}` ({setting}): distilled accuracy on validation "
            f"{_mean_std(top['kd.validation_accuracy'], top['kd.validation_accuracy_std'])}; on test "
            f"{_mean_std(top['kd.accuracy'], top['kd.accuracy_std'])}, {top['gain']:+.4f} against the hard labels. "
            "Choose on the validation column: a choice on test figures would make them optimistic.", ""]


SAME_TEST_ROWS = ("data.transfer.", "data.omit_classes")  # data params that leave the test rows as they are


def setting_notes(frame: pd.DataFrame) -> list[str]:
    """What the table's columns do not say: params every experiment shares that differ from its baseline commit's
    params.yaml (uncommitted changes of the workspace when they were queued), and a swept ``data`` param that
    gives each experiment its own test rows (their accuracies then do not compare across rows)."""
    notes = []
    commit = frame["baseline"].iloc[0]
    shown = subprocess.run(["git", "show", f"{commit}:params.yaml"], capture_output=True, text=True)
    if shown.returncode == 0:
        import yaml

        committed = flatten(yaml.safe_load(shown.stdout) or {})
        shared = {c[6:]: frame[c].tolist()[0] for c in frame.columns if c.startswith("param:")
                  and frame[c].map(json.dumps).nunique() == 1 and c != "param:kd.method"}
        changed = {key: value for key, value in shared.items() if committed.get(key, "absent") != value}
        if changed:
            notes.append("Every experiment also differs from the params.yaml of commit "
                         f"{commit[:7]} (changes in the workspace when they were queued): "
                         + ", ".join(f"`{key}` = {json.dumps(value)} ({json.dumps(committed[key])} there)"
                                     if key in committed else f"`{key}` = {json.dumps(value)} (absent there)"
                                     for key, value in sorted(changed.items())) + ".")
    split = [p for p in swept_params(frame) if p.startswith("data.") and not p.startswith(SAME_TEST_ROWS)]
    if split:
        notes.append(f"The experiments differ in {', '.join(f'`{p}`' for p in split)}, so each is scored on its own "
                     "test rows: compare the distilled and hard students within a row (the last column), not the "
                     "accuracies of different rows.")
    return [line for note in notes for line in (note, "")]


def _mean_std(mean: float | None, std: float | None) -> str:
    """``mean ± std``; "—" for a figure the experiment's metrics lack (an older schema's)."""
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.4f} ± {std:.4f}"


def sweep_table(frame: pd.DataFrame) -> str:
    """The Markdown table of the experiments."""
    params = swept_params(frame)
    header = ["experiment", *params, "distilled accuracy, validation", "distilled accuracy", "distilled ECE",
              "hard accuracy", "hard ECE", "distilled − hard accuracy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in frame.iterrows():
        cells = [r["name"], *(_cell(r, p) for p in params),
                 _mean_std(r.get("kd.validation_accuracy"), r.get("kd.validation_accuracy_std")),
                 _mean_std(r["kd.accuracy"], r["kd.accuracy_std"]), _mean_std(r["kd.ece"], r["kd.ece_std"]),
                 _mean_std(r["hard.accuracy"], r["hard.accuracy_std"]), _mean_std(r["hard.ece"], r["hard.ece_std"]),
                 f"{r['gain']:+.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def distill_seconds(name: str) -> float | None:
    """The distilled students' training time in experiment ``name`` (the Trainer's ``train_runtime`` summed over
    seeds, as its distill stage printed it in ``dvc queue logs NAME``), or None when its log does not hold it.
    Timings are kept out of every committed file (docs/layout.md, "Where timings go"), so an experiment's commit
    has none."""
    log = subprocess.run(["dvc", "queue", "logs", name], capture_output=True, text=True).stdout
    found = re.findall(rf"^{re.escape(DISTILL_SECONDS_LINE)}([0-9.]+|nan) s$", log, flags=re.MULTILINE)
    return float(found[-1]) if found and found[-1] != "nan" else None


def kd_seconds(frame: pd.DataFrame, seconds: dict[str, float | None]) -> float | None:
    """The mean distill time of the sweep's ``kd`` experiments that have one: what the others are relative to."""
    times = [seconds.get(n) for n in frame.loc[frame["param:kd.method"] == "kd", "name"]]
    times = [t for t in times if t]
    return float(np.mean(times)) if times else None


def time_cells(time: float | None, reference: float | None) -> list[str]:
    """An experiment's distill time in seconds and relative to ``kd`` ("—" where either is unknown)."""
    return [f"{time:.1f}" if time else "—", f"{time / reference:.2f}×" if time and reference else "—"]


def untimed_note(frame: pd.DataFrame, seconds: dict[str, float | None]) -> list[str]:
    """The lines that name the experiments without a distill time and why, if any."""
    untimed = [f"`{n}`" for n in frame["name"] if not seconds.get(n)]
    if not untimed:
        return []
    note = (f"No distill time for {', '.join(untimed)}: its `dvc queue logs` holds no distill run. DVC trains "
            "nothing for an experiment whose params are the workspace's (it keeps the workspace's outputs, trained "
            "by an earlier `dvc repro`, not beside the others) or that ran before with the same params and code "
            "(its run-cache restores the outputs: `Stage 'distill' is cached` in the log); a failed one has no time "
            "either.")
    if kd_seconds(frame, seconds) is None and (frame["param:kd.method"] == "kd").any():
        note += " With no `kd` time, no time is relative to `kd`: compare the seconds."
    return [note, ""]


def methods_table(frame: pd.DataFrame, seconds: dict[str, float | None]) -> str:
    """One row per experiment of a methods comparison; ``seconds``: experiment name -> distill training time.
    Time is relative to the mean of the sweep's ``kd`` experiments."""
    params = [p for p in swept_params(frame) if p != "kd.method" and frame[f"param:{p}"].map(json.dumps).nunique() > 1]
    reference = kd_seconds(frame, seconds)
    header = ["method", *params, "accuracy, validation", "accuracy", "− hard (95 % CI), points", "ECE",
              "agreement with teacher", "distill time, s", "distill time vs kd"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in frame.iterrows():
        gap = 100 * r["gain"]
        interval = "" if pd.isna(r.get("gain_ci_low")) else \
            f" ({100 * r['gain_ci_low']:+.2f} to {100 * r['gain_ci_high']:+.2f})"
        agreement = "—" if pd.isna(r.get("kd.agreement")) else _mean_std(r["kd.agreement"], r["kd.agreement_std"])
        cells = [f"`{r['param:kd.method']}`", *(_cell(r, p) for p in params),
                 _mean_std(r.get("kd.validation_accuracy"), r.get("kd.validation_accuracy_std")),
                 _mean_std(r["kd.accuracy"], r["kd.accuracy_std"]), f"{gap:+.2f}{interval}",
                 _mean_std(r["kd.ece"], r["kd.ece_std"]), agreement, *time_cells(seconds.get(r["name"]), reference)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def methods_plot(frame: pd.DataFrame, path: Path) -> None:
    """Test accuracy of each experiment's distilled students (error bars: std over seeds), the hard-label
    students as a reference band."""
    from ..evaluation.plots import pyplot, save_figure

    plt = pyplot()
    others = [p for p in swept_params(frame) if p != "kd.method"]
    labels = [r["param:kd.method"] + "".join(f"\n{p.split('.')[-1]}={_cell(r, p)}" for p in others
                                             if frame[f"param:{p}"].map(json.dumps).nunique() > 1
                                             and _cell(r, p) != "—")
              for _, r in frame.iterrows()]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(frame) + 2), 4.5))
    # points, not bars: the axis starts near the accuracies, where bar lengths would exaggerate the gaps
    ax.errorbar(range(len(frame)), frame["kd.accuracy"], yerr=frame["kd.accuracy_std"], fmt="o", capsize=4,
                color="tab:blue", label="distilled students")
    hard, hard_std = frame["hard.accuracy"].mean(), frame["hard.accuracy_std"].mean()
    ax.axhline(hard, color="dimgray", lw=1.5, label=f"hard labels ({hard:.4f})")
    ax.axhspan(hard - hard_std, hard + hard_std, color="dimgray", alpha=0.15, lw=0)
    low = float(np.nanmin(frame["kd.accuracy"] - frame["kd.accuracy_std"]))
    ax.set_ylim(min(low, hard - hard_std) - 0.01, min(1.0, float(np.nanmax(frame["kd.accuracy"])) + 0.02))
    ax.set_xticks(range(len(frame)), labels, fontsize=8)
    ax.set(ylabel="test accuracy",
           title="methods, best on validation first: test accuracy (error bars: std over seeds)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _line_groups(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Experiments with alpha > 0 grouped into lines over T: one per alpha (and other swept params)."""
    others = [p for p in swept_params(frame) if p not in ("kd.T", "kd.method")]
    distilled = frame[frame["param:kd.alpha"] > 0]
    keys = distilled[[f"param:{p}" for p in others]].map(json.dumps)  # lists (train.seeds) group as their text
    groups = {}
    for key, part in distilled.groupby([keys[f"param:{p}"] for p in others], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{'α' if p == 'kd.alpha' else p} = {_value(json.loads(v))}" for p, v in zip(others, key)
                          if frame[f"param:{p}"].map(json.dumps).nunique() > 1 or p == "kd.alpha")
        groups[label] = part.groupby("param:kd.T", as_index=False).mean(numeric_only=True)
    return groups


def metrics_vs_temperature(frame: pd.DataFrame, path: Path) -> None:
    """Validation accuracy (the one to choose by), test accuracy and test ECE vs T of ``kd`` experiments, one line
    per alpha with error bars over seeds; hard baseline and α = 0 as references."""
    from ..evaluation.plots import pyplot, save_figure

    plt = pyplot()
    panels = [("validation_accuracy", "validation accuracy"), ("accuracy", "test accuracy"), ("ece", "test ECE")]
    panels = [(metric, title) for metric, title in panels if frame[f"kd.{metric}"].notna().all()]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    ablation = frame[frame["param:kd.alpha"] == 0]
    for ax, (metric, title) in zip(axes[0], panels):
        for label, line in _line_groups(frame).items():
            ax.errorbar(line["param:kd.T"], line[f"kd.{metric}"], yerr=line[f"kd.{metric}_std"],
                        marker="o", capsize=3, label=f"KD, {label}")
        hard, hard_std = frame[f"hard.{metric}"].mean(), frame[f"hard.{metric}_std"].mean()
        ax.axhline(hard, color="dimgray", lw=1.5, label=f"hard labels ({hard:.3f})")
        ax.axhspan(hard - hard_std, hard + hard_std, color="dimgray", alpha=0.15, lw=0)
        if len(ablation):
            value = ablation[f"kd.{metric}"].mean()
            ax.axhline(value, color="black", ls="--", lw=1.2, label=f"α = 0 ablation ({value:.3f})")
        ax.set_xscale("log", base=2)
        temperatures = sorted(frame["param:kd.T"].unique())
        ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
        ax.set(xlabel="temperature T", ylabel=title, title=f"kd: {title} vs T (error bars: std over seeds)")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plain_kd(frame: pd.DataFrame) -> pd.DataFrame:
    """The experiments of ``kd.method: kd``, which the plots over T and α show (other methods read other params,
    or not α: a cell of theirs would pass for kd's)."""
    return frame[frame["param:kd.method"] == "kd"]


def gain_heatmap(frame: pd.DataFrame, path: Path) -> None:
    """KD − hard test accuracy over the (alpha, T) grid; blank where the grid has no experiment."""
    from ..evaluation.plots import pyplot, save_figure

    plt = pyplot()
    grid = frame.pivot_table(index="param:kd.alpha", columns="param:kd.T", values="gain", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.3 * grid.shape[1] + 3, 0.9 * grid.shape[0] + 2))
    values = grid.to_numpy(dtype=float)
    limit = max(float(np.nanmax(np.abs(values))), 1e-4)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if math.isnan(value):
            ax.text(j, i, "not run", ha="center", va="center", fontsize=8, color="0.4")
        else:
            color = "white" if abs(value) > 0.6 * limit else "black"
            ax.text(j, i, f"{value:+.3f}", ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(grid.shape[1]), [f"{t:g}" for t in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{a:g}" for a in grid.index])
    ax.set(xlabel="temperature T", ylabel="α", title="kd: distilled − hard-label test accuracy")
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)


def exp_show(rev: str = "HEAD") -> list[dict]:
    """``dvc exp show --json --rev REV`` parsed: the experiments whose baseline is commit ``rev``."""
    result = subprocess.run(["dvc", "exp", "show", "--json", "--rev", rev], capture_output=True, text=True)
    if result.returncode != 0:
        raise DistilleryError(f"`dvc exp show --json --rev {rev}` failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def tuning_history(study, metric: str, path: Path) -> None:
    """Optuna's optimization history plot: every trial's value and the best so far."""
    import optuna

    from ..evaluation.plots import pyplot, save_figure

    pyplot()  # the Agg backend before Optuna imports pyplot
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_optimization_history(study, target_name=metric)
    ax.set_title(f"tuning history: {study.study_name} ({metric}, validation)")
    save_figure(ax.figure, path)


def _value(v) -> str:
    """A param's value for a table: floats to 4 significant digits (a tuned kd.T of 4.975432265518121: 4.975)."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def tuning_section(study, tune: dict, plots: Path, relative: Path) -> list[str]:
    """The Markdown lines of the tuning section; draws the history plot when a trial is complete."""
    from optuna.trial import TrialState

    from .study import apply_command, best

    trials = study.get_trials(deepcopy=False)
    states = pd.Series([t.state.name.lower() for t in trials]).value_counts().to_dict()
    space = list(tune["space"])
    parts = [f"## Tuning: study `{study.study_name}`", "",
             f"{len(trials)} trials ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}) of the budget "
             f"{tune['trials']} in `{tune['storage']}`, {tune['sampler'].upper()} sampler seeded with {tune['seed']}, "
             f"{tune['direction']} `{tune['metric']}` (validation split; the tables above are test numbers).", ""]
    top = best(study)
    if top:
        settings = ", ".join(f"`{k}` = {_value(v)}" for k, v in top["params"].items())
        parts += [f"**Best:** trial {top['number']}, experiment `{top['experiment']}`: `{tune['metric']}` = "
                  f"{top['value']:.4f} with {settings}. Apply it: `{apply_command(top)}`", ""]
    header = ["trial", "state", *space, tune["metric"], "experiment"]
    parts += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in trials:
        value = f"{t.value:.4f}" if t.state == TrialState.COMPLETE else "—"
        cells = [str(t.number), t.state.name.lower(), *(_value(t.params[k]) if k in t.params else "—" for k in space),
                 value, f"`{t.user_attrs['experiment']}`" if "experiment" in t.user_attrs else "—"]
        parts.append("| " + " | ".join(cells) + " |")
    parts.append("")
    if top:
        tuning_history(study, tune["metric"], plots / "tune_history.png")
        parts += [f"![tuning history]({relative / 'tune_history.png'})", ""]
    return parts


def write_report(names: list[str] | None = None, report: Path = REPORT, plots: Path = PLOTS,
                 rev: str = "HEAD", study=None, tune: dict | None = None,
                 queue_states: dict[str, str] | None = None) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """Write the Markdown report and its plots for the experiments in ``names`` (default: all) on baseline
    ``rev``; with an Optuna ``study`` (and its ``tune`` params) the tuning section replaces the grid plots, and
    the report is written even when none of the study's experiments hangs off ``rev`` (another machine's).
    Every experiment of ``names`` without metrics is listed as missing, with what DVC says of it (and its
    ``dvc queue status`` state from ``queue_states``); returns the rows and ``{missing name: reason}``."""
    from ..io import write_text

    relative = Path("sweep") if plots.parent == report.parent else plots
    shown = exp_show(rev)
    try:
        frame = experiments(shown, names)
    except DistilleryError:
        if study is None and not names:
            raise
        frame = None
    found = set() if frame is None else set(frame["name"])
    missing = {name: missing_reason(shown, name) for name in names or [] if name not in found}
    for name in missing:
        if queue_states and name in queue_states:
            missing[name] += f"; `dvc queue status`: {queue_states[name]}"
    parts = ["# Sweep", ""]
    if names:
        queued = counted(len(names), "experiment") + " queued" if study is None else \
            counted(len(names), "trial experiment")
        parts += [f"{queued}, {len(found)} with "
                  "metrics"
                  + (f", **{len(missing)} missing**" if missing else "") + ".", ""]
    if missing:
        parts += ["## Missing experiments", "", "Queued by the sweep but without metrics in `dvc exp show`; "
                  "`dvc queue logs NAME` has the run's output.", "",
                  *[f"- `{name}`: {reason}" for name, reason in missing.items()], ""]
    language_model = frame is not None and is_language_model(frame)
    if language_model:
        seconds = {r["name"]: distill_seconds(r["name"]) for _, r in frame.iterrows()}
        parts += [f"{counted(len(frame), 'language-model experiment')} on baseline {frame['baseline'].iloc[0][:7]} "
                  "(`dvc exp show --json`). Students: mean ± std over seeds; the KD − hard interval is the paired "
                  "bootstrap over test sequences of the experiment's evaluate stage; the distill time is the "
                  "Trainer's training time summed over seeds, in seconds and relative to the `kd` experiment(s) of this "
                  "sweep.", "",
                  language_model_table(frame, seconds), "", *untimed_note(frame, seconds), *setting_notes(frame)]
    elif frame is not None:
        parts += [f"{counted(len(frame), 'experiment')} on baseline {frame['baseline'].iloc[0][:7]} "
                  "(`dvc exp show --json`). Students: mean ± std over seeds; the first accuracy is on the validation "
                  "split, the one to choose a setting by, the rest are on the test split, for reporting only.", "",
                  *best_line(frame),
                  sweep_table(frame), "", *setting_notes(frame)]
    if frame is not None and not language_model and frame["param:kd.method"].nunique() > 1:
        seconds = {r["name"]: distill_seconds(r["name"]) for _, r in frame.iterrows()}
        ranked = frame.sort_values("kd.validation_accuracy", ascending=False, na_position="last", kind="stable")
        methods_plot(ranked, plots / "methods.png")
        parts += ["## Methods", "",
                  "Each method with its default params unless the table says otherwise, best on validation first; "
                  "the gap to the hard-label students is the paired bootstrap over test examples of the experiment's "
                  "evaluate stage; the distill time is the Trainer's training time summed over seeds (the stage's "
                  "imports and loading excluded), in seconds and relative to the `kd` experiment(s) of this sweep.", "",
                  methods_table(ranked, seconds), "", *untimed_note(frame, seconds),
                  f"![methods]({relative / 'methods.png'})", ""]
    if study is not None:
        parts += tuning_section(study, tune, plots, relative)
    elif frame is not None and not language_model and plain_kd(frame)["param:kd.T"].nunique() > 1:
        kd_rows = plain_kd(frame)
        metrics_vs_temperature(kd_rows, plots / "metrics_vs_T.png")
        gain_heatmap(kd_rows, plots / "kd_minus_hard.png")
        parts += [f"![accuracy and ECE vs T]({relative / 'metrics_vs_T.png'})", "",
                  f"![distilled − hard accuracy]({relative / 'kd_minus_hard.png'})", ""]
    text = "\n".join(parts)
    write_text(report, text)
    drawn = re.findall(r"\]\((?:[^)]*/)?([^/)]+\.png)\)", text)  # the plots this report shows, drawn just now
    print(f"wrote {report}" + (f" and {', '.join(drawn)} in {plots}" if drawn else ""))
    return frame, missing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.sweep_report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="experiments to include (default: all on the baseline commit)")
    parser.add_argument("--rev", default="HEAD", help="the sweep's baseline commit (default: HEAD)")
    args = parser.parse_args(argv)
    from ..cli import run_stage

    run_stage(lambda: write_report(args.names or None, rev=args.rev), uses_torch=False)


if __name__ == "__main__":
    main()
