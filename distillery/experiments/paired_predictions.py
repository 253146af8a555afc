"""Two revisions' test predictions (``reports/eval/predictions.csv``) row by row: whether a change moved each model's
test accuracy beyond what resampling the test rows gives, the rows paired by id."""
from __future__ import annotations

import io

import numpy as np

PREDICTIONS = "reports/eval/predictions.csv"
KIND_NAMES = {"teacher": "teacher", "kd": "distilled", "hard": "hard labels"}


def read_predictions(text: str):
    """``predictions.csv``'s text as a table indexed by id, every cell as written (class names)."""
    import pandas as pd

    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return table.set_index(table["id"].astype(np.int64)).drop(columns="id")


def columns_by_kind(table) -> dict[str, list[str]]:
    """Each model kind's prediction columns: ``teacher``, ``kd_seed0``.. under ``kd``, ``hard_seed0``.. under ``hard``."""
    kinds: dict[str, list[str]] = {}
    for column in table.columns.drop("label"):
        kinds.setdefault(column.split("_seed")[0], []).append(column)
    return kinds


def correct(table, columns: list[str]) -> np.ndarray:
    """A (models, rows) boolean array: each of ``columns`` (a kind's seeds) predicts the row's label."""
    label = table["label"].to_numpy()
    return np.stack([table[c].to_numpy() == label for c in columns])


def compare(old_text: str, new_text: str, samples: int, seed: int) -> dict:
    """Each model kind in both revisions on the test rows both hold (joined by id): accuracy before and after (mean
    over seeds), their difference with a paired-bootstrap 95 % interval over those rows (``samples`` resamples,
    ``seed``), the seeds of each, and whether any prediction changed. ``rows``: the common rows; ``only_old`` /
    ``only_new``: the ids one revision alone scores; ``relabelled``: common rows whose label differs."""
    from ..evaluation.metrics import paired_bootstrap_ci

    old, new = read_predictions(old_text), read_predictions(new_text)
    common = old.index.intersection(new.index)
    old_rows, new_rows = old.loc[common], new.loc[common]
    out = {"rows": len(common), "only_old": int(len(old.index.difference(common))),
           "only_new": int(len(new.index.difference(common))),
           "relabelled": int((old_rows["label"] != new_rows["label"]).sum()), "models": {}}
    if not len(common):
        return out
    before, after = columns_by_kind(old_rows), columns_by_kind(new_rows)
    for kind in [k for k in after if k in before]:
        was, now = correct(old_rows, before[kind]), correct(new_rows, after[kind])
        interval = paired_bootstrap_ci(now.mean(axis=0, keepdims=True), was.mean(axis=0, keepdims=True), samples, seed)
        same = before[kind] == after[kind] and bool((new_rows[after[kind]] == old_rows[before[kind]]).all().all())
        out["models"][kind] = {"old": float(was.mean()), "new": float(now.mean()), "old_models": len(was),
                               "new_models": len(now), "same_predictions": same, **interval}
    return out


def verdict(model: dict) -> str:
    """A model's change in words: the predictions are the same, or the interval holds 0 (noise of these rows), or
    the change is beyond it."""
    if model["same_predictions"]:
        return "same predictions on every row"
    if model["ci_low"] <= 0 <= model["ci_high"]:
        return "the interval holds 0: within what resampling the test rows gives"
    return f"**{'better' if model['difference'] > 0 else 'worse'}**: the interval excludes 0"


def comparison_markdown(comparison: dict, rev: str) -> str:
    """The section's table, one row per model kind, with a line on the rows compared."""
    rows, models = comparison["rows"], comparison["models"]
    notes = []
    if comparison["only_old"] or comparison["only_new"]:
        old_only = comparison["only_old"]
        notes.append(f"the test rows differ: {old_only:,} {'is' if old_only == 1 else 'are'} in `{rev}` only and "
                     f"{comparison['only_new']:,} in this change only; compared on the {rows:,} both hold")
    if relabelled := comparison["relabelled"]:
        notes.append(f"{relabelled:,} of them {'has' if relabelled == 1 else 'have'} another label in this change")
    if not rows or not models:
        return "No test row or model is in both revisions: nothing to pair."
    head = (f"Test accuracy on the {rows:,} test rows both revisions score, paired by id (students: the mean over "
            "their seeds); the interval is a paired bootstrap over the rows"
            + (f" ({'; '.join(notes)})" if notes else "") + ".")

    def seeds(kind: str, count: int) -> str:
        return "" if kind == "teacher" else f" ({count} seed{'s' if count != 1 else ''})"

    lines = [head, "", f"| model | {rev} | this change | change | 95 % interval | verdict |", "|---|---|---|---|---|---|"]
    for kind, m in models.items():
        before = f"{m['old']:.4f}{seeds(kind, m['old_models'])}"
        after = f"{m['new']:.4f}{seeds(kind, m['new_models'])}"
        lines.append(f"| {KIND_NAMES.get(kind, kind)} | {before} | {after} | {m['difference']:+.4f} | "
                     f"{m['ci_low']:+.4f} to {m['ci_high']:+.4f} | {verdict(m)} |")
    return "\n".join(lines)
