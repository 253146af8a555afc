"""The evaluate stage's logic: run teacher and students on validation and test, score them, compare them."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from ..data.prepared import Prepared
from ..errors import DistilleryError
from ..models.inference import split_logits
from ..models.zoo import count_parameters, load_model
from ..data.omitted import omitted_table, resolve as resolve_omitted
from .quantization import int8_parameters, quantize_int8, quantized_size
from ..models.text import saved_tokenizer
from ..training.students import GENERATIONS, generations_root, seed_dir, seeds_in
from ..training.teacher import REFERENCE_FILE, load_teacher_and_tokenizer

MODELS = ("teacher", "kd", "hard")
CONFIDENCE = 0.95  # of the bootstrap interval; McNemar is read at the matching 5 % level


@dataclass
class Evaluation:
    """What evaluate writes: ``metrics`` (teacher/kd/hard blocks, ``kd_int8``/``hard_int8`` with
    ``student.quantize: int8``, ``generations`` when the distilled students have them, and a ``comparison``
    block), per-example
    predictions (each test row's id, label and every model's predicted class, by name), reliability tables (``<model>`` and ``<model>_scaled`` after temperature scaling, students
    pooled over seeds) and the raw test logits keyed ``teacher`` / ``<kind>_seed<s>``."""

    metrics: dict
    predictions: pd.DataFrame
    reliability: dict[str, pd.DataFrame]
    test_logits: dict[str, np.ndarray]


def size_on_disk(path: Path) -> int:
    """Bytes of the files a model directory holds, as it ships: weights, config, tokenizer, inputs.json (0 for a Hub
    reference)."""
    path = Path(path)
    reference = path / REFERENCE_FILE
    if reference.exists():
        target = Path(json.loads(reference.read_text())["checkpoint"])
        return size_on_disk(target) if target.is_dir() else 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _finite_or_none(value):
    return None if value is None or not math.isfinite(value) else float(value)


def _mean_std(rows: list[dict]) -> dict:
    """Mean and sample std over seeds of every key; a key that is None for some seed stays None."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if any(v is None for v in values):
            out[key], out[f"{key}_std"] = None, None
            continue
        values = np.array(values, dtype=np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def score(
    test_logits: np.ndarray,
    val_logits: np.ndarray,
    prepared: Prepared,
    n_bins: int,
    teacher_test_logits: np.ndarray | None = None,
) -> dict:
    """Every per-model metric: classification, calibration before/after temperature scaling, ROC AUC and,
    for a student (``teacher_test_logits`` given), fidelity to the teacher."""
    test, val = prepared.splits["test"], prepared.splits["validation"]
    row = M.classification_metrics(test_logits, test.labels, prepared.num_labels, n_bins)
    row["validation_accuracy"] = M.accuracy(val_logits, val.labels)  # report.teacher_warning compares these
    row.update(M.calibration_after_scaling(val_logits, val.labels, test_logits, test.labels, n_bins))
    if teacher_test_logits is not None:
        row["agreement"] = M.agreement(test_logits, teacher_test_logits)
        row["kl_teacher_student"] = M.kl_divergence(teacher_test_logits, test_logits)
        row.update(M.accuracy_where_teacher(test_logits, teacher_test_logits, test.labels))
    auc = M.roc_auc_per_class(test_logits, test.labels)
    row["roc_auc_macro"] = _finite_or_none(np.nanmean(auc)) if np.isfinite(auc).any() else None
    row.update({f"roc_auc_{name}": _finite_or_none(v) for name, v in zip(prepared.label_names, auc)})
    return row


def compare_students(kd_correct: dict[int, np.ndarray], hard_correct: dict[int, np.ndarray], params: dict) -> dict:
    """KD vs hard on the same test rows: exact McNemar per seed and a paired bootstrap interval of the
    accuracy difference (kd - hard) pooled over seeds."""
    if sorted(kd_correct) != sorted(hard_correct):
        raise DistilleryError(
            f"models/students: kd seeds {sorted(kd_correct)} differ from hard seeds {sorted(hard_correct)}; "
            "re-run the distill and hard_baseline stages"
        )
    seeds = sorted(kd_correct)
    ev = params["evaluate"]
    ci = M.paired_bootstrap_ci(
        np.stack([kd_correct[s] for s in seeds]),
        np.stack([hard_correct[s] for s in seeds]),
        ev["bootstrap_samples"],
        ev["bootstrap_seed"],
        CONFIDENCE,
    )
    out = {
        "kd_minus_hard_accuracy": ci["difference"],
        "kd_minus_hard_ci_low": ci["ci_low"],
        "kd_minus_hard_ci_high": ci["ci_high"],
        "bootstrap_samples": ev["bootstrap_samples"],
    }
    significant = 0
    for s in seeds:
        test = M.mcnemar(kd_correct[s], hard_correct[s])
        out[f"mcnemar_kd_only_seed{s}"] = test["a_only"]
        out[f"mcnemar_hard_only_seed{s}"] = test["b_only"]
        out[f"mcnemar_p_seed{s}"] = test["p_value"]
        significant += test["p_value"] < 1 - CONFIDENCE
    out["mcnemar_significant_seeds"] = significant
    return out


TEACHER_KEYS = ("accuracy", "macro_f1", "nll", "ece")


def score_teachers(params: dict, prepared: Prepared, teacher_logits: dict[str, np.ndarray], teachers_root: Path) -> dict:
    """Every ``teachers.<name>`` on test from its stored logits (joined by id), and the ensemble of all teachers
    (the teacher included) under each combination rule of ``multi_teacher``, at T = 1; weights of the
    ``accuracy`` rule from validation."""
    from ..io import read_logits
    from ..methods.multi_teacher import RULES, ensemble_targets

    test, val = prepared.splits["test"], prepared.splits["validation"]
    bins = params["evaluate"]["ece_bins"]
    per_teacher = {"teacher": teacher_logits}
    for name in params["teachers"]:
        per_teacher[name] = {split: read_logits(Path(teachers_root) / name / f"{split}.parquet",
                                                prepared.splits[split].ids, prepared.num_labels)
                             for split in ("validation", "test")}
    accuracies = np.array([(t["validation"].argmax(1) == val.labels).mean() for t in per_teacher.values()])
    stacked = np.stack([t["test"] for t in per_teacher.values()], axis=1)
    logits = {name: t["test"] for name, t in per_teacher.items() if name != "teacher"}
    logits |= {f"ensemble_{rule}": ensemble_targets(stacked, accuracies, 1.0, rule) for rule in RULES}
    out = {}
    for name, z in logits.items():
        row = M.classification_metrics(z, test.labels, prepared.num_labels, bins)
        out[name] = {k: row[k] for k in TEACHER_KEYS}
    return out


def generation_roots(root: Path) -> list[Path]:
    """The students of every generation under ``root`` (``students.generations_root``), in order, the last one
    (``root`` itself) last; ``[root]`` when there are no generations."""
    saved = Path(root) / GENERATIONS
    if not saved.is_dir():
        return [Path(root)]
    ks = sorted(int(p.name) for p in saved.iterdir() if p.is_dir() and p.name.isdigit())
    if ks != list(range(1, len(ks) + 1)):
        raise DistilleryError(f"{saved}: generations {ks}, expected 1..{len(ks)} (re-run the distill stage)")
    return [generations_root(root, k) for k in ks] + [Path(root)]


def score_generations(test_logits: dict[int, list[np.ndarray]], labels: np.ndarray, num_labels: int,
                      n_bins: int) -> dict:
    """Each generation's test logits per seed (``{seed: [generation 1, ..., last]}``) scored as ``generation_<k>``,
    and each seed's ensemble of its generations (the mean of their probabilities) as ``ensemble``: accuracy,
    macro-F1, NLL and ECE, mean ± sample std over seeds."""
    from scipy.special import log_softmax, logsumexp

    def row(logits):
        scored = M.classification_metrics(logits, labels, num_labels, n_bins)
        return {k: scored[k] for k in TEACHER_KEYS}

    def ensemble(per_generation):
        log_p = log_softmax(np.stack(per_generation).astype(np.float64), axis=-1)
        return logsumexp(log_p, axis=0) - np.log(len(per_generation))

    seeds = sorted(test_logits)
    count = len(test_logits[seeds[0]])
    out = {f"generation_{k}": _mean_std([row(test_logits[s][k - 1]) for s in seeds]) for k in range(1, count + 1)}
    out["ensemble"] = _mean_std([row(ensemble(test_logits[s])) for s in seeds])
    return out


def score_int8(model, tokenizer, prepared: Prepared, fp32_test: np.ndarray, fp32_row: dict, n_bins: int,
               batch: int, teacher_test: np.ndarray, desc: str) -> dict:
    """The int8 version of a student (``distillery.evaluation.quantization``, run on CPU) scored like the fp32 one, plus
    how far it moved from it: ``agreement_fp32`` (top-1), ``accuracy_drop`` (fp32 - int8) and
    ``logit_max_abs_diff`` (largest change of a test logit)."""
    import torch

    cpu = torch.device("cpu")
    quantized = quantize_int8(model)
    test = split_logits(quantized, tokenizer, prepared.splits["test"], batch, f"{desc} int8 test", "student-test", cpu)
    val = split_logits(quantized, tokenizer, prepared.splits["validation"], batch, f"{desc} int8 validation",
                       "student-validation", cpu)
    row = score(test, val, prepared, n_bins, teacher_test)
    row["agreement_fp32"] = M.agreement(test, fp32_test)
    row["accuracy_drop"] = fp32_row["accuracy"] - row["accuracy"]
    row["logit_max_abs_diff"] = float(np.abs(test - fp32_test).max())
    return row


def evaluate(params: dict, prepared: Prepared, teacher_dir: Path, student_dirs: dict[str, Path],
             teachers_root: Path = Path("data/teachers")) -> Evaluation:
    """Score every model on the test split (temperatures fitted on validation) and compare the students;
    with ``student.quantize: int8`` also the int8 version of every student (blocks ``<kind>_int8``)."""
    test, val = prepared.splits["test"], prepared.splits["validation"]
    bins, batch = params["evaluate"]["ece_bins"], params["evaluate"]["batch_size"]
    int8 = params["student"]["quantize"] == "int8"

    teacher, tokenizer = load_teacher_and_tokenizer(teacher_dir)
    teacher_test = split_logits(teacher, tokenizer, test, batch, "teacher test", "teacher-test")
    teacher_val = split_logits(teacher, tokenizer, val, batch, "teacher validation", "teacher-validation")
    teacher_row = score(teacher_test, teacher_val, prepared, bins)
    metrics = {"teacher": {**teacher_row, "params": count_parameters(teacher), "size_bytes": size_on_disk(teacher_dir)}}
    if params["teachers"]:
        metrics["teachers"] = score_teachers(params, prepared, {"test": teacher_test, "validation": teacher_val},
                                             teachers_root)
    test_logits = {"teacher": teacher_test}
    scaled = {"teacher": [M.scale_logits(teacher_test, teacher_row["temperature"])]}
    predictions = pd.DataFrame({"id": test.ids, "label": test.labels, "teacher": teacher_test.argmax(-1)})
    correct: dict[str, dict[int, np.ndarray]] = {}
    student_logits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # kind -> (test, validation) per seed
    for kind, root in student_dirs.items():
        per_seed, int8_rows, scaled[kind], correct[kind] = [], [], [], {}
        seeds = seeds_in(root)
        earlier = generation_roots(root)[:-1]
        for gen_root in earlier:
            if seeds_in(gen_root) != seeds:
                raise DistilleryError(f"{gen_root}: seeds {seeds_in(gen_root)} differ from {root}'s {seeds} "
                                      "(re-run the distill stage)")
        generation_logits = {}
        for seed in seeds:
            model, tokenizer = load_model(seed_dir(root, seed)), saved_tokenizer(seed_dir(root, seed))
            out = split_logits(model, tokenizer, test, batch, f"{kind} seed {seed} test", "student-test")
            val_out = split_logits(model, tokenizer, val, batch, f"{kind} seed {seed} validation", "student-validation")
            row = score(out, val_out, prepared, bins, teacher_test)
            per_seed.append(row)
            student_logits.setdefault(kind, []).append((out, val_out))
            test_logits[f"{kind}_seed{seed}"] = out
            scaled[kind].append(M.scale_logits(out, row["temperature"]))
            predictions[f"{kind}_seed{seed}"] = out.argmax(-1)
            correct[kind][seed] = out.argmax(-1) == test.labels
            if int8:
                int8_rows.append(score_int8(model, tokenizer, prepared, out, row, bins, batch, teacher_test,
                                            f"{kind} seed {seed}"))
            if earlier:
                generation_logits[seed] = [
                    split_logits(load_model(seed_dir(r, seed)), saved_tokenizer(seed_dir(r, seed)), test, batch,
                                 f"{kind} seed {seed} generation {k} test", "student-test")
                    for k, r in enumerate(earlier, 1)] + [out]
        metrics[kind] = {
            **_mean_std(per_seed),
            "params": count_parameters(model),
            "size_bytes": size_on_disk(seed_dir(root, seeds[0])),
            "seeds": len(seeds),
        }
        if int8:
            quantized = quantize_int8(model)
            metrics[f"{kind}_int8"] = {
                **_mean_std(int8_rows),
                "params": count_parameters(quantized),
                "int8_params": int8_parameters(quantized),
                **quantized_size(seed_dir(root, seeds[-1]), quantized),
                "seeds": len(seeds),
            }
        if earlier:
            metrics["generations"] = score_generations(generation_logits, test.labels, prepared.num_labels, bins)
    omitted = resolve_omitted(params["data"]["omit_classes"], prepared.label_names)
    if omitted:
        metrics["omitted_classes"] = {
            "classes": [prepared.label_names[c] for c in omitted],
            **{kind: omitted_table([t for t, _ in runs], [v for _, v in runs], test.labels, val.labels, omitted)
               for kind, runs in student_logits.items()},
        }
    comparison = compare_students(correct["kd"], correct["hard"], params)
    student = metrics["kd"]
    comparison["compression_params"] = metrics["teacher"]["params"] / student["params"]
    comparison["compression_size"] = (
        metrics["teacher"]["size_bytes"] / student["size_bytes"] if metrics["teacher"]["size_bytes"] else None
    )
    metrics["comparison"] = comparison

    reliability = {}
    for name in MODELS:
        runs = [v for k, v in test_logits.items() if k == name or k.startswith(f"{name}_seed")]
        labels = np.tile(test.labels, len(runs))  # students pooled over seeds
        reliability[name] = pd.DataFrame(M.reliability_bins(np.concatenate(runs), labels, bins))
        reliability[f"{name}_scaled"] = pd.DataFrame(M.reliability_bins(np.concatenate(scaled[name]), labels, bins))
    names = np.asarray(prepared.label_names, dtype=object)  # the class names, as the report and dvc plots show them
    predictions[predictions.columns[1:]] = predictions[predictions.columns[1:]].apply(lambda column: names[column])
    return Evaluation(metrics, predictions, reliability, test_logits)
