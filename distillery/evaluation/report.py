"""``reports/report.md``: the page a person reads first, built from metrics.json and params (timings: ``main``)."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.layout import layout_shape
from ..io import SELECTION_FILE, TIMINGS_ROOT
from ..methods import describe, get_method
from .wording import budget_caveat, counted, evaluated_once, spread_over_seeds

MODELS = ("teacher", "kd", "hard")
SPEED_FILE = TIMINGS_ROOT / "speed.json"  # written by the evaluate stage
# (key, title, digits or None for an integer, group)
ROWS = [
    ("accuracy", "accuracy", 4, "Accuracy"),
    ("errors", "test errors (of the scored rows)", 1, "Accuracy"),
    ("macro_f1", "macro-F1", 4, "Accuracy"),
    ("roc_auc_macro", "ROC AUC (one-vs-rest, macro)", 4, "Accuracy"),
    ("validation_accuracy", "accuracy on validation", 4, "Accuracy"),
    ("nll", "NLL", 4, "Calibration (test)"),
    ("ece", "ECE (top-label)", 4, "Calibration (test)"),
    ("classwise_ece", "classwise ECE", 4, "Calibration (test)"),
    ("brier", "Brier score", 4, "Calibration (test)"),
    ("temperature", "fitted temperature T", 3, "Temperature scaling (T fitted on validation)"),
    ("nll_scaled", "NLL after scaling", 4, "Temperature scaling (T fitted on validation)"),
    ("ece_scaled", "ECE after scaling", 4, "Temperature scaling (T fitted on validation)"),
    ("agreement", "top-1 agreement with teacher", 4, "Fidelity to the teacher"),
    ("kl_teacher_student", "KL(teacher ‖ student), nats", 4, "Fidelity to the teacher"),
    ("accuracy_teacher_right", "accuracy where the teacher is right", 4, "Fidelity to the teacher"),
    ("accuracy_teacher_wrong", "accuracy where the teacher is wrong", 4, "Fidelity to the teacher"),
    ("params", "parameters", None, "Size"),
    ("size_bytes", "size on disk (bytes)", None, "Size"),
]
PLOTS = [
    ("confusion.png", "Confusion matrices"),
    ("reliability.png", "Reliability before and after temperature scaling"),
    ("confidence.png", "Confidence of right and wrong predictions"),
    ("roc.png", "ROC curves per class"),
    ("scatter.png", "Student vs teacher outputs"),
    ("examples.png", "Test examples with each model's prediction"),
    ("training.png", "Training curves"),
]


def _cell(block: dict, key: str, digits: int | None) -> str:
    value = block.get(key)
    if value is None:
        return "—"
    if digits is None:
        return f"{value:,}"
    std = block.get(f"{key}_std")
    if std is None or block.get("seeds") == 1:  # one seed: no spread to show (not ± 0)
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {std:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def metrics_table(metrics: dict, method: str = "kd") -> str:
    """A Markdown table: one row per metric, one column per model (students as mean ± std over seeds); the
    distilled students' column is named after their ``method``."""
    models = [m for m in MODELS if m in metrics]
    rows, group = [], None
    for key, title, digits, g in ROWS:
        if g != group:
            rows.append([f"**{g}**"] + [""] * len(models))
            group = g
        rows.append([title] + [_cell(metrics[m], key, digits) for m in models])
    names = {"teacher": "teacher", "kd": f"distilled: {method}", "hard": "hard labels"}
    header = ["metric"] + [m if m == "teacher" else f"{names[m]} ({counted(metrics[m].get('seeds', 1), 'seed')})"
                           for m in models]
    return _table(header, rows)


def roc_table(metrics: dict, label_names: list[str]) -> str:
    """Per-class one-vs-rest ROC AUC, one row per class (folded away when there are many classes)."""
    rows = [[str(name).replace("|", "\\|")] + [_cell(metrics[m], f"roc_auc_{name}", 4) for m in MODELS]
            for name in label_names]
    table = _table(["class"] + list(MODELS), rows)
    if len(label_names) <= 20:
        return table
    return f"<details><summary>{len(label_names)} classes</summary>\n\n{table}\n\n</details>"


def significance_verdict(comparison: dict, seeds: int, method: str = "kd") -> str:
    """Distilled vs hard in plain words: the bootstrap interval decides, McNemar per seed backs it up."""
    d, lo, hi = (100 * comparison[f"kd_minus_hard_{k}"] for k in ("accuracy", "ci_low", "ci_high"))
    interval = f"95 % CI {lo:+.2f} to {hi:+.2f} points"
    if lo > 0 or hi < 0:
        better = "more" if d > 0 else "less"
        verdict = (f"**Significant.** The students distilled with `{method}` are {better} accurate than the hard-label students by "
                   f"{abs(d):.2f} percentage points ({interval}); the interval excludes zero, so the difference "
                   "is statistically significant at the 5 % level.")
    else:
        verdict = (f"**Not significant.** The accuracy of the students distilled with `{method}` differs from the hard-label students' by "
                   f"{d:+.2f} percentage points ({interval}); the interval includes zero, so this test set does "
                   "not show a real difference.")
    k = comparison["mcnemar_significant_seeds"]
    return (f"{verdict} McNemar's exact test, seed by seed, finds p < 0.05 on {k} of {counted(seeds, 'seed')}.")


def teachers_table(metrics: dict) -> str:
    """The teacher, every ``teachers.<name>`` and their ensembles (T = 1) on test, beside the distilled students."""
    rows = [["teacher", *(f"{metrics['teacher'][k]:.4f}" for k in ("accuracy", "macro_f1", "nll", "ece"))]]
    for name, block in metrics["teachers"].items():
        label = f"ensemble of all teachers, {name.removeprefix('ensemble_')}" if name.startswith("ensemble_") \
            else f"teachers.{name}"
        rows.append([label, *(f"{block[k]:.4f}" for k in ("accuracy", "macro_f1", "nll", "ece"))])
    rows.append(["distilled students", *(_cell(metrics["kd"], k, 4) for k in ("accuracy", "macro_f1", "nll", "ece"))])
    return _table(["model", "accuracy", "macro-F1", "NLL", "ECE"], rows)


def generations_table(metrics: dict) -> str:
    """The teacher, every generation of the distilled students (the last is the distilled student) and the ensemble
    of a seed's generations, beside the hard-label students, on test (students: mean ± std over seeds)."""
    keys = ("accuracy", "macro_f1", "nll", "ece")
    blocks = metrics["generations"]
    last = max(int(name.removeprefix("generation_")) for name in blocks if name.startswith("generation_"))
    rows = [["teacher", *(f"{metrics['teacher'][k]:.4f}" for k in keys)]]
    for name, block in blocks.items():
        if name == "ensemble":
            label = f"ensemble of generations 1-{last} (mean of probabilities)"
        else:
            k = int(name.removeprefix("generation_"))
            label = f"generation {k}" + (" (the distilled students)" if k == last else "")
        rows.append([label, *(_cell(block, key, 4) for key in keys)])
    rows.append(["hard labels", *(_cell(metrics["hard"], k, 4) for k in keys)])
    return _table(["model", "accuracy", "macro-F1", "NLL", "ECE"], rows)


def generations_section(params: dict, metrics: dict) -> list[str]:
    """The report's "Generations" section (empty when the distilled students have no generations)."""
    if "generations" not in metrics:
        return []
    count = sum(name.startswith("generation_") for name in metrics["generations"])
    steps = params["train"]["max_steps"]
    return [
        "### Generations",
        f"The distilled students are the last of {count} generations of the teacher's architecture, trained one "
        f"after the other, {steps:,} steps each: generation 1 distilled from the teacher's logits, generation k "
        "from generation k-1's. **The distilled students used "
        f"{count}× the hard-label students' training budget** ({count * steps:,} steps against {steps:,}). "
        "Generation 1 starts from the hard student's initial weights, later generations from other seeds; the "
        "ensemble averages the probabilities of a seed's generations (T = 1). Mean ± std over seeds, test split.",
        generations_table(metrics),
    ]


def mcnemar_table(comparison: dict, method: str = "kd") -> str:
    seeds = sorted(int(k.removeprefix("mcnemar_p_seed")) for k in comparison if k.startswith("mcnemar_p_seed"))
    rows = [[str(s), str(comparison[f"mcnemar_kd_only_seed{s}"]), str(comparison[f"mcnemar_hard_only_seed{s}"]),
             f"{comparison[f'mcnemar_p_seed{s}']:.4g}"] for s in seeds]
    return _table(["seed", f"only {method} right", "only hard right", "p (exact McNemar)"], rows)


def _describe_model(spec: dict) -> str:
    if spec["arch"] == "hf":
        if spec.get("init_from_teacher_layers"):
            text = f"the teacher's architecture with its layers {spec['init_from_teacher_layers']} copied"
        elif spec["pretrained"]:
            text = f"`{spec['pretrained']}`"
        else:
            text = "built from the config " + ", ".join(f"{k} {v}" for k, v in (spec["config"] or {}).items())
            if spec.get("init_embeddings"):
                text += (f"; embeddings started from `{spec['init_embeddings']}`'s, projected to the hidden size "
                         "(student.model.init_embeddings)")
        return f"{text}; max_length {spec['max_length']}"
    if spec["arch"] == "mlp":
        hidden = "-".join(map(str, spec["hidden_sizes"]))
        return f"MLP, hidden layers {hidden}, dropout {spec['dropout']}"
    channels = "-".join(map(str, spec["channels"]))
    return f"CNN, conv channels {channels}, dense {spec['hidden_size']}, dropout {spec['dropout']}"


def teacher_warning(metrics: dict) -> str | None:
    """A warning when the teacher's validation accuracy is not above the hard-label students' mean, else None."""
    teacher = metrics["teacher"].get("validation_accuracy")
    hard = metrics["hard"].get("validation_accuracy")
    if teacher is None or hard is None or teacher > hard:
        return None
    text = (f"The teacher is not better than the hard-label students on validation: accuracy {teacher:.4f} against "
            f"their mean {hard:.4f}. A teacher that does not beat the students has nothing to teach them, so the "
            "KD vs hard comparison here says nothing about distillation. ")
    if hard == 1:
        return text + "The students need no teacher on this data: it is too easy for a comparison."
    return text + "Improve the teacher first (training budget, size, feature scaling: data.scaling)."


def majority_warning(predictions, label_names: list[str]) -> str | None:
    """A warning naming the models whose test accuracy is not above always predicting the most common test class
    (``predictions``: evaluate's predictions.csv with class indices, ``plots.read_predictions``), else None."""
    import numpy as np

    labels = predictions["label"].to_numpy()
    counts = np.bincount(labels, minlength=len(label_names))
    majority, share = int(counts.argmax()), counts.max() / len(labels)
    weak = []
    for column in (c for c in predictions.columns if c not in ("id", "label")):
        guesses = predictions[column].to_numpy()
        accuracy = float((guesses == labels).mean())
        if accuracy <= share:
            only = np.unique(guesses)
            how = f"predicts `{label_names[only[0]]}` for every row" if len(only) == 1 else \
                f"scores {accuracy:.4f}"
            weak.append(f"`{column}` {how}")
    if not weak:
        return None
    return (f"{'; '.join(weak)}: no better than always predicting the most common test class, `{label_names[majority]}` "
            f"({share:.4f} of the rows). Such a model learnt little from the inputs (too few steps, a learning rate "
            "too high or too low, or a student too small), and comparisons with it say little.")


def untaught_warning(meta: dict) -> str | None:
    """A warning when some class has no train rows (``classes_without_train_rows`` of meta.json), else None."""
    untaught = meta.get("classes_without_train_rows")
    if not untaught:
        return None
    listed = "; ".join(f"`{name}` ({', '.join(f'{n:,} {split}' for split, n in rows.items())} rows)"
                       for name, rows in untaught.items())
    return (f"No train row has the class {listed}: every model has an output for it that no row taught. Give it "
            "train rows, or leave it out of `data.label_names`.")


def missing_classes_warning(meta: dict) -> str | None:
    """A warning when the validation or test split has no row of a class train has
    (``classes_without_validation_or_test_rows`` of meta.json), else None."""
    missing = meta.get("classes_without_validation_or_test_rows")
    if not missing:
        return None
    costs = {"validation": "checkpoint selection and temperature scaling never see {}",
             "test": "the test scores say nothing about {}"}
    said = "; ".join(f"the {split} split has no row of the {'class' if len(names) == 1 else 'classes'} "
                     f"{', '.join(f'`{name}`' for name in names)}: "
                     + costs[split].format("it" if len(names) == 1 else "them") for split, names in missing.items())
    return (f"Train has classes that other splits lack: {said}. Give those classes more rows: a stratified split "
            "gives each split its share of a class's rows, which rounds to none for a class of a few rows.")


def categories_warning(meta: dict) -> str | None:
    """A warning when a one-hot column has more categories than half the train rows (``too_many_categories`` of
    meta.json: an id, a date or free text), else None."""
    crowded = meta.get("too_many_categories")
    if not crowded:
        return None
    listed = "; ".join(
        f"`{column}` has {c['categories']:,} categories in {c['train_rows']:,} train rows, and "
        + " and ".join(f"{n:,} of the {meta['sizes'][split]:,} {split} rows" for split, n in c["unseen_rows"].items())
        + " hold a value train never saw" for column, c in crowded.items())
    return (f"One-hot columns with about a category per train row: {listed}. One-hot encoding gives each category a "
            "feature of its own and a value train never saw all zeros, as most new rows will get: an id, a date or "
            "free text is no category. Leave such a column out of `data.feature_columns`.")


def _source(source: str, data: dict) -> str:
    """``data.source`` for the setting table; a ``files`` source with its files."""
    if source != "files" or not data.get("files"):
        return f"`{source}`"
    return "files " + ", ".join(f"{split} `{path}`" for split, path in data["files"].items())


def _inputs(meta: dict) -> str:
    """What each row's input is, for the setting table."""
    if meta.get("kind") == "text":
        columns = meta["inputs"]["columns"]
        pair = f" paired with the column {columns['text_pair']!r}" if "text_pair" in columns else ""
        repeated = meta.get("texts_also_in_train", {})
        also = "".join(f"; {n:,} of the {meta['sizes'][split]:,} {split} rows repeat a train row's text word for word"
                       for split, n in repeated.items() if n)
        return f"the text of the column {columns['text']!r}{pair}{also}"
    also = "".join(f"; {n:,} of the {meta['sizes'][split]:,} {split} rows repeat a train row's features value for "
                   f"value" for split, n in meta.get("inputs_also_in_train", {}).items() if n)
    if meta.get("kind") == "table":
        return f"{len(meta['features'])} features from the columns {meta['feature_columns']}{also}"
    layout = meta.get("inputs", {}).get("channels")  # images of 3 dims: channels first, moved by prepare if last
    laid = {"first": " (channels first)",
            "last": f" (channels first; the source's images are {layout_shape(meta['input_shape'], 'last')}, "
                    "channels last, moved by prepare)"}.get(layout, "")
    return f"input shape {meta['input_shape']}{laid}{also}"


def scaling_text(scaling: dict, pixel_max: float | None = None) -> str:
    """The ``scaling`` record of meta.json in words, with the range of its statistics; ``pixel_max``: what the
    loader divided pixel intensities by (meta.json's ``inputs``), when it did."""
    param = f"`data.scaling: {scaling['param']}`"
    if scaling["scaler"] == "none":
        if scaling["param"] != "auto":
            return f"none ({param})"
        loaded = f"the source's 0..{pixel_max:g} divided by {pixel_max:g} when loaded" if pixel_max else "0..1"
        return f"none ({param}: pixel intensities, {loaded})"
    if scaling["scaler"] == "standard":
        what, stats = "standardized per feature (scikit-learn `StandardScaler`", ("mean", "scale")
    else:
        what, stats = "scaled to 0..1 per feature (scikit-learn `MinMaxScaler`", ("data_min", "data_max")
    ranges = "; ".join(f"{k} {min(scaling[k]):.4g} to {max(scaling[k]):.4g}" for k in stats)
    return (f"{what}, {param}), fitted on the {scaling['fitted_on_train_rows']:,} train rows only "
            f"({ranges}; per feature in `data/prepared/meta.json`)")


def transfer_text(params: dict, meta: dict, transfer: dict) -> str:
    """The transfer-set row of the setting table: how many labelled and transfer rows the distilled students saw,
    where the transfer rows came from, and the teacher's agreement with the labels the rows had in their source
    (``transfer``: data/transfer_logits/summary.json)."""
    labelled = meta.get("sizes", {}).get("train", 0)
    repeats = params["data"]["transfer"]["labelled_repeats"]
    origins = ", ".join(f"{n:,} {ORIGIN_WORDS[o]}" for o, n in transfer["origins"].items() if n)
    text = (f"the distilled students saw {labelled:,} labelled rows" + (f" ({repeats}× each per pass)" if repeats > 1
                                                                      else "")
            + f" and {transfer['rows']:,} transfer rows without labels ({origins}), shuffled together; the hard "
            f"students saw the {labelled:,} labelled rows only")
    if transfer.get("agreement") is not None:
        parts = "; ".join(f"{o}: {v['agreement']:.1%} of {v['rows']:,}" for o, v in transfer["by_origin"].items())
        text += (f". The teacher agrees with the label the row had in its source on {transfer['agreement']:.1%} of "
                 f"the {transfer['labelled_rows']:,} transfer rows that have one ({parts}); no student trains on them")
    return text


ORIGIN_WORDS = {"rest": "train rows beyond data.max_train_examples, labels dropped",
                "source": "rows of data.transfer.source", "augment": "augmented variants of the labelled rows"}


KIND_WORDS = {"kd": "distilled", "hard": "hard"}


def load_selections(curves_root: Path) -> list[dict]:
    """Each seed's checkpoint record (``selection.json``, written by ``training.runs``) under a students' curves
    root such as ``reports/training/kd``, in seed order."""
    paths = sorted(Path(curves_root).glob(f"seed_*/{SELECTION_FILE}"), key=lambda p: int(p.parent.name.split("_")[1]))
    return [{"seed": int(p.parent.name.split("_")[1]), **json.loads(p.read_text())} for p in paths]


def setting_inputs(params: dict) -> dict:
    """What ``setting_table`` reads beyond the params, from a reproduced workspace: the transfer set's summary (when
    data.transfer is on), each kind's checkpoint records and evaluate's record of its CPU numerics."""
    from ..data.transfer import SUMMARY_FILE, TRANSFER_LOGITS, enabled
    from ..numerics import RECORD_FILE

    summary, numerics = TRANSFER_LOGITS / SUMMARY_FILE, Path("reports/eval") / RECORD_FILE
    return {"transfer": json.loads(summary.read_text()) if enabled(params["data"]["transfer"]) and summary.exists()
            else None,
            "selections": {kind: load_selections(Path("reports/training") / kind) for kind in ("kd", "hard")},
            "numerics": json.loads(numerics.read_text()) if numerics.exists() else None}


def selection_text(train: dict, selections: dict[str, list[dict]]) -> str:
    """The checkpoint row of the setting table: ``train.select``'s rule, and per model (``selections``: kind ->
    each seed's ``selection.json``) the step it picked and its validation accuracy there."""
    once = evaluated_once(train)
    if once:
        rule = (f"`train.select: best`, but `train.eval_steps` ({train['eval_steps']:,}) is not below "
                f"`train.max_steps` ({train['max_steps']:,}): one evaluation, at the last step, so nothing was chosen")
    elif train["select"] == "best":
        rule = (f"`train.select: best`: each student at its highest validation accuracy over the evaluations every "
                f"{train['eval_steps']} steps (ties: the earlier step)")
    else:
        rule = f"`train.select: last`: each student at step {train['max_steps']}, whatever validation says"
    parts = []
    for kind, records in selections.items():
        if records:
            steps = ", ".join(f"{r['step']:,}" for r in records)
            accuracy = sum(r["validation_accuracy"] for r in records) / len(records)
            parts.append(f"{KIND_WORDS.get(kind, kind)}: steps {steps} (seeds "
                         f"{', '.join(str(r['seed']) for r in records)}; mean validation accuracy there "
                         f"{accuracy:.4f})")
    text = rule + ("; picked " + "; ".join(parts) if parts else "")
    at_end = sum(r["step"] == r["last_step"] for records in selections.values() for r in records)
    if train["select"] == "best" and at_end and not once:
        text += (f". {at_end} of {sum(map(len, selections.values()))} students peaked at their last evaluation: "
                 "their best may lie beyond `train.max_steps`")
    return text


def _at_most(train: dict) -> str:
    return "at most " if train["select"] == "best" else ""


def budget_text(train: dict) -> str:
    """How the students' training budgets were chosen, in words."""
    if train["select"] == "best":
        return (f"the same ceiling for both, `train.max_steps` = {train['max_steps']:,}; within it each student's "
                "budget is chosen on validation (the step of its best validation accuracy: the checkpoint row), "
                "never on test")
    return (f"the same for both, `train.max_steps` = {train['max_steps']:,}, fixed in params.yaml and not chosen on "
            "validation here (`train.select: best` picks each student's step on validation)")


def numerics_text(record: dict) -> str:
    """The CPU numerics a stage ran under (its ``numerics.json``, ``distillery.numerics.record``), in words."""
    level, env = record["reproducible_cpu"], record["environment"]
    threads = f"{record['torch_threads']} torch thread{'s' if record['torch_threads'] != 1 else ''}"
    kernels = f"torch's {record['torch_cpu_capability']} kernels"
    if level == "native" or not record["applies"]:
        why = "" if record["applies"] else " (not an x86 CPU: the pinned paths do not apply)"
        return (f"`reproducible_cpu: {level}`{why}: this CPU's own code paths ({kernels}), {threads}; "
                "another CPU may give other bits")
    pinned = ", ".join(f"{name}={value}" for name, value in env.items() if value and name != "ATEN_CPU_CAPABILITY")
    deterministic = "deterministic algorithms" if record["deterministic_algorithms"] else "default algorithms"
    return (f"`reproducible_cpu: {level}`: {kernels}, {pinned}, {deterministic}, {threads}: the same bits on any "
            "x86-64 CPU that runs them ([docs/reproducibility.md](../docs/reproducibility.md))")


def setting_table(params: dict, meta: dict, metrics: dict, transfer: dict | None = None,
                  selections: dict[str, list[dict]] | None = None, numerics: dict | None = None) -> str:
    teacher = params["teacher"]
    if teacher["checkpoint"]:
        teacher_text = f"checkpoint `{teacher['checkpoint']}`"
    elif teacher["model"]["arch"] == "hf" and not teacher["finetune"]:
        teacher_text = f"{_describe_model(teacher['model'])}, used as it is"
    else:
        teacher_text = (f"{_describe_model(teacher['model'])}; trained here (seed {teacher['seed']}, "
                        f"at most {teacher['train']['max_steps']} steps, early stopping on validation accuracy)")
    sizes = meta.get("sizes", {})
    rows = [
        ["data", f"{_source(meta.get('source', params['data']['source']), params['data'])}: "
                 + ", ".join(f"{n:,} {split}" for split, n in sizes.items())
                 + f"; {len(meta['label_names'])} classes"
                 + f"; {_inputs(meta)}"],
        ["teacher", f"{teacher_text}; {metrics['teacher']['params']:,} parameters"],
        ["student", f"{_describe_model(params['student']['model'])}; {metrics['kd']['params']:,} parameters"],
        ["distillation", f"method {describe(params['kd'])} ({get_method(params['kd']['method']).paper})"],
        ["student training", f"seeds {params['train']['seeds']}, {_at_most(params['train'])}{params['train']['max_steps']} "
                             "steps each; "
                             "distilled and hard students share initial weights and data order per seed"],
    ]
    if "generations" in metrics:
        count = sum(name.startswith("generation_") for name in metrics["generations"])
        rows[-1][1] = (f"seeds {params['train']['seeds']}, {_at_most(params['train'])}{params['train']['max_steps']} "
                       "steps for each hard student "
                       f"and each of the {count} generations of distilled students ({count}× the hard students' "
                       "budget); generation 1 and the hard students share initial weights per seed, every "
                       "generation shares their data order")
    rows.append(["student budget", budget_text(params["train"])])
    if selections is not None:
        rows.append(["student checkpoint", selection_text(params["train"], selections)])
    if numerics is not None:
        rows.append(["CPU numerics", numerics_text(numerics)])
    if transfer and transfer.get("rows"):
        rows.insert(4, ["transfer set", transfer_text(params, meta, transfer)])
    if meta.get("scaling"):
        rows.insert(1, ["feature scaling", scaling_text(meta["scaling"], (meta.get("inputs") or {}).get("pixel_max"))])
    if meta.get("split_origin"):
        rows.insert(1, ["splits", "; ".join(f"{k}: {v}" for k, v in meta["split_origin"].items())])
    return _table(["", "setting"], rows)


def evaluated_on(meta: dict) -> str:
    """Which rows the metrics are computed on, in words (a source with hidden test labels is scored on its
    validation split)."""
    if meta.get("hidden_test_labels"):
        return ("Scored on the source's validation split (its test labels are hidden), which no model saw; "
                "early stopping and temperature scaling used a held-out part of train")
    if meta.get("split_origin", {}).get("test") == "source validation":
        return ("Scored on the source's validation split (it has no test split), which no model saw; "
                "early stopping and temperature scaling used a held-out part of train")
    return "Test split"


def _times(speedup: float) -> str:
    """A speed-up in words: 2.0 -> "2.0× faster", 0.5 -> "2.0× slower"."""
    return f"{speedup:.1f}× faster" if speedup >= 1 else f"{1 / speedup:.1f}× slower"


def size_speed_table(metrics: dict, speed: dict | None) -> str:
    teacher, student, comparison = metrics["teacher"], metrics["kd"], metrics["comparison"]
    size_ratio = comparison["compression_size"]
    rows = [
        ["parameters", f"{teacher['params']:,}", f"{student['params']:,}",
         f"{comparison['compression_params']:.1f}× smaller"],
        ["size on disk (bytes)", f"{teacher['size_bytes']:,}", f"{student['size_bytes']:,}",
         "—" if size_ratio is None else f"{size_ratio:.1f}× smaller"],
    ]
    if speed is not None:
        t, s = speed["teacher"], speed["student"]
        rows += [
            ["latency, batch 1 (ms)", f"{t['latency_ms']:.3f}", f"{s['latency_ms']:.3f}",
             _times(speed["speedup_latency"])],
            [f"throughput, batch {speed['batch_size']} (rows/s)", f"{t['throughput_per_s']:,.0f}",
             f"{s['throughput_per_s']:,.0f}", _times(speed["speedup_throughput"])],
        ]
    return _table(["", "teacher", "student", "student vs teacher"], rows)


def _int8_kinds(metrics: dict) -> list[str]:
    return [kind for kind in ("kd", "hard") if f"{kind}_int8" in metrics]


def int8_table(metrics: dict, method: str = "kd") -> str:
    """fp32 vs int8 for each student kind: accuracy (mean ± std over seeds), the drop, agreement, sizes."""
    names = {"kd": f"distilled: {method}", "hard": "hard labels"}
    rows = []
    for kind in _int8_kinds(metrics):
        fp32, int8 = metrics[kind], metrics[f"{kind}_int8"]
        rows.append([
            f"{names[kind]} ({counted(int8['seeds'], 'seed')})",
            _cell(fp32, "accuracy", 4), _cell(int8, "accuracy", 4),
            f"{100 * int8['accuracy_drop']:+.2f} ± {100 * int8['accuracy_drop_std']:.2f}",
            _cell(int8, "agreement_fp32", 4),
            _cell(fp32, "ece", 4), _cell(int8, "ece", 4),
            f"{fp32['size_bytes']:,} → {int8['size_bytes']:,} "
            f"({fp32['size_bytes'] / int8['size_bytes']:.1f}× smaller)",
            f"{int8['weights_bytes_fp32']:,} → {int8['weights_bytes']:,} "
            f"({int8['weights_bytes_fp32'] / int8['weights_bytes']:.1f}× smaller)",
            f"{int8['tensor_bytes_fp32']:,} → {int8['tensor_bytes']:,} "
            f"({int8['tensor_bytes_fp32'] / int8['tensor_bytes']:.1f}× smaller)",
        ])
    return _table(["students", "accuracy fp32", "accuracy int8", "drop (points, fp32 − int8)",
                   "top-1 agreement int8 vs fp32", "ECE fp32", "ECE int8", "size on disk (bytes)",
                   "weights file (bytes)", "tensor data (bytes)"], rows)


def int8_section(params: dict, metrics: dict, speed: dict | None) -> list[str]:
    """The report's "Quantized students (int8)" section (empty without ``student.quantize: int8`` blocks)."""
    kinds = _int8_kinds(metrics)
    if not kinds:
        return []
    block = metrics[f"{kinds[0]}_int8"]
    arch = params["student"]["model"]["arch"]
    fp32_rest = {"mlp": "biases", "cnn": "biases and the convolutions (dynamic quantization covers Linear layers "
                                          "only: the CNN's convs stay fp32)",
                 "hf": "biases, embeddings and LayerNorm"}[arch]
    parts = [
        "## Quantized students (int8)",
        "Every student, each seed, also scored after post-training dynamic int8 quantization (torchao "
        "`Int8DynamicActivationInt8WeightConfig`, `student.quantize: int8`): each Linear weight is stored as int8 "
        "with one fp32 scale per output row, and activations are quantized to int8 per row at run time. "
        f"{block['int8_params']:,} of the student's {block['params']:,} parameters are int8; {fp32_rest} stay fp32. "
        "Sizes: the safetensors state dict (int8 weights, scales and zero points) with the model's config"
        + (" and tokenizer files" if arch == "hf" else "") + ", the file alone, and its tensor data alone "
        "(the file's header, where torchao describes each quantized tensor in JSON, weighs for small students).",
        int8_table(metrics, params["kd"]["method"]),
    ]
    timing = (speed or {}).get("int8")
    if timing:
        fp32, int8 = timing["student"], timing["student_int8"]
        parts += [
            _table(["", "fp32", "int8", "int8 vs fp32"], [
                ["latency, batch 1 (ms)", f"{fp32['latency_ms']:.3f}", f"{int8['latency_ms']:.3f}",
                 _times(timing["speedup_latency"])],
                [f"throughput, batch {timing['batch_size']} (rows/s)", f"{fp32['throughput_per_s']:,.0f}",
                 f"{int8['throughput_per_s']:,.0f}", _times(timing["speedup_throughput"])],
            ]),
            f"Timed on {timing['device']}: the first distilled seed in fp32 and int8, taking turns in one process, "
            f"median of {timing['repeats']} passes after warm-up (every student shares the architecture). For "
            "small models the fixed cost per call of the int8 path in eager mode (quantizing the activations, "
            "dispatching through torchao's tensor subclass) can outweigh the cheaper matmul; compare the ratios, "
            "not the absolute times.",
        ]
    return parts


def summary(metrics: dict, speed: dict | None, method: str = "kd") -> str:
    teacher, kd, comparison = metrics["teacher"], metrics["kd"], metrics["comparison"]
    kept = 100 * kd["accuracy"] / teacher["accuracy"] if teacher["accuracy"] else float("nan")
    text = (f"The student distilled with `{method}` reaches {_cell(kd, 'accuracy', 4)} test accuracy against the "
            f"teacher's {teacher['accuracy']:.4f} ({kept:.1f} % of it) and the hard-label student's "
            f"{_cell(metrics['hard'], 'accuracy', 4)}, with "
            f"{comparison['compression_params']:.1f}× fewer parameters")
    if speed is not None:
        text += (f"; it is {_times(speed['speedup_latency'])} at batch size 1 and "
                 f"{_times(speed['speedup_throughput'])} at batch size {speed['batch_size']}")
    return text + "."


def omitted_section(metrics: dict) -> list[str]:
    """Hinton et al.'s omitted-class experiment: test errors on every row and on the omitted classes' rows,
    before and after raising the omitted classes' output bias by the value fitted on validation."""
    block = metrics.get("omitted_classes")
    if not block:
        return []
    from ..data.omitted import PAPER

    classes = ", ".join(block["classes"])
    rows = []
    for kind in ("kd", "hard"):
        if kind in block:
            m = block[kind]["mean"]
            rows.append([f"{kind} (mean of {counted(len(block[kind]['seeds']), 'seed')})", f"{m['errors']:.1f}",
                         f"{m['omitted_errors']:.1f} of {m['omitted_rows']:,.0f}", f"{m['bias']:.2f}",
                         f"{m['errors_after']:.1f}", f"{m['omitted_errors_after']:.1f}"])
    rows.append(["Hinton et al. 2015, MNIST without the 3s (distilled)", str(PAPER["errors"]),
                 f"{PAPER['omitted_errors']} of {PAPER['omitted_rows']:,}", str(PAPER["bias"]),
                 str(PAPER["errors_after"]), str(PAPER["omitted_errors_after"])])
    return [f"## Omitted classes ({classes})",
            f"No student trained on a row of class {classes} (labelled or transfer row with a known label); the "
            "teacher did. The bias correction adds one value to the omitted classes' logits, fitted on validation "
            "(highest validation accuracy, grid of 0.1).",
            _table(["student", "test errors", "on the omitted classes", "bias added", "errors after",
                    "on the omitted classes after"], rows)]


def report_warnings(meta: dict, metrics: dict, predictions=None) -> list[str]:
    """The warnings that open the report and the model card: classes the splits lack, one-hot columns that are
    no categories, a teacher with nothing to teach, and the models in ``predictions`` (test class indices) no
    better than the most common class."""
    return [w for w in (untaught_warning(meta), missing_classes_warning(meta), categories_warning(meta),
                        teacher_warning(metrics),
                        majority_warning(predictions, meta["label_names"]) if predictions is not None else None) if w]


def render_report(params: dict, meta: dict, metrics: dict, speed: dict | None, plots: list[str],
                  transfer: dict | None = None, selections: dict[str, list[dict]] | None = None,
                  numerics: dict | None = None, predictions=None) -> str:
    """The whole page. ``plots``: PNG file names present under ``reports/plots`` (linked relatively);
    ``transfer``: the transfer set's summary (data/transfer_logits/summary.json) when data.transfer is on;
    ``selections``: kind -> each seed's checkpoint record (``training.runs.load_selections``);
    ``numerics``: the evaluate stage's record of its CPU numerics (reports/eval/numerics.json); ``predictions``:
    evaluate's test predictions with class indices (``plots.read_predictions``), for ``majority_warning``."""
    seeds = metrics["kd"].get("seeds", 1)
    method = params["kd"]["method"]
    warnings = report_warnings(meta, metrics, predictions)
    parts = [
        "# Distillation report",
        *(f"> **Warning.** {warning}" for warning in warnings),
        summary(metrics, speed, method),
        "## Setting",
        setting_table(params, meta, metrics, transfer, selections, numerics),
        "## Metrics",
        f"{evaluated_on(meta)}; students are {spread_over_seeds(seeds)}. Temperature scaling divides the logits "
        "by one T per model, fitted to minimise the validation NLL; accuracy does not change.",
        metrics_table(metrics, method),
        *(["### Every teacher and their ensemble",
           "Ensembles combine the teachers' test probabilities (mean; geometric mean of the probabilities, "
           "renormalised; mean weighted by validation accuracy) at T = 1; `multi_teacher` distils the one "
           "its `combine` param names, at T.", teachers_table(metrics)] if "teachers" in metrics else []),
        *generations_section(params, metrics),
        *omitted_section(metrics),
        "### ROC AUC per class (one-vs-rest)",
        roc_table(metrics, meta["label_names"]),
        f"## Distilled (`{method}`) vs hard labels: is the difference real?",
        significance_verdict(metrics["comparison"], seeds, method),
        *filter(None, [budget_caveat(params["train"], selections, method)]),
        f"The interval is a paired bootstrap over test examples ({metrics['comparison']['bootstrap_samples']:,} "
        "resamples, fixed seed) of the accuracy difference pooled over seeds; it holds the trained seeds fixed, "
        "so the spread between seeds is the ± in the table above. McNemar compares the distilled and hard student of "
        "the same seed on the same test rows; only the rows where exactly one of them is right count.",
        mcnemar_table(metrics["comparison"], method),
        "## Size and speed",
        size_speed_table(metrics, speed),
    ]
    parts.append(speed_note(speed))
    parts += int8_section(params, metrics, speed)
    available = set(plots)
    figures = [f"### {title}\n\n![{title}](plots/{name})" for name, title in PLOTS if name in available]
    if figures:
        parts += ["## Plots", *figures]
    return "\n\n".join(parts) + "\n"


def speed_note(speed: dict | None) -> str:
    """How the speed rows were timed, or (``speed`` None: the committed page) where the timings are."""
    if speed is None:
        return (f"Latency and throughput are timed on every run of the evaluate stage into `{SPEED_FILE}`, which git "
                "ignores since timings differ run to run; `make repro` (`python -m distillery.evaluation.report`) prints them.")
    return (f"Timed on {speed['device']}: median of {speed['repeats']} passes after warm-up, teacher and student "
            "taking turns in one process (student: the first distilled seed; distilled and hard students share the "
            "architecture). Absolute times vary between runs and machines; compare the ratios.")


def summary_lines(metrics: dict, method: str = "kd") -> str:
    """What the evaluate stage prints: each model's validation and test accuracy, the distilled − hard difference on
    test with its interval; the whole table is ``main``'s (``make repro``) and the report's."""
    lines = []
    for name, label in (("teacher", "teacher"), ("kd", f"distilled: {method}"), ("hard", "hard labels")):
        block = metrics[name]
        seeds = f" ({counted(block['seeds'], 'seed')})" if "seeds" in block else ""
        lines.append(f"{label}{seeds}: accuracy on validation {_cell(block, 'validation_accuracy', 4)}, on test "
                     f"{_cell(block, 'accuracy', 4)}")
    c = metrics["comparison"]
    lines.append(f"distilled − hard on test: {100 * c['kd_minus_hard_accuracy']:+.2f} points (95 % paired bootstrap "
                 f"{100 * c['kd_minus_hard_ci_low']:+.2f} to {100 * c['kd_minus_hard_ci_high']:+.2f}); every metric: "
                 "reports/metrics.json, the table: python -m distillery.evaluation.report, the report: reports/report.md")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m distillery.evaluation.report reports/metrics.json``: print the metrics table, then the size and speed table
    when this workspace's evaluate stage timed the models (``reports/timings/speed.json``)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "reports/metrics.json"
    with open(path) as f:
        metrics = json.load(f)
    if "perplexity" in metrics["teacher"]:  # task causal_lm
        from .lm_report import lm_table

        speed = json.loads(SPEED_FILE.read_text()) if SPEED_FILE.exists() else None
        print(lm_table(metrics, speed))
        return
    print(metrics_table(metrics))
    if SPEED_FILE.exists():
        speed = json.loads(SPEED_FILE.read_text())
        print(f"\n{size_speed_table(metrics, speed)}\n\n{speed_note(speed)}")


if __name__ == "__main__":
    main()
