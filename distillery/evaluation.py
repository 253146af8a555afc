"""The evaluate stage's logic: run teacher and students on test, score them, aggregate over seeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from .data import Prepared
from .inference import predict_logits
from .models import count_parameters, load_model
from .students import seed_dir, seeds_in
from .teacher import REFERENCE_FILE, load_teacher

MODELS = ("teacher", "kd", "hard")


def size_on_disk(path: Path) -> int:
    """Bytes of the weights and config files a model directory holds (0 for a Hub reference)."""
    path = Path(path)
    reference = path / REFERENCE_FILE
    if reference.exists():
        import json

        target = Path(json.loads(reference.read_text())["checkpoint"])
        return size_on_disk(target) if target.is_dir() else 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _mean_std(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def evaluate(
    params: dict, prepared: Prepared, teacher_dir: Path, student_dirs: dict[str, Path]
) -> tuple[dict, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Score every model on the test split.

    Returns the metrics (``{"teacher": {...}, "kd": {...}, "hard": {...}}``, students as
    mean and ``_std`` over seeds), per-example predictions, and per-model reliability tables.
    """
    test = prepared.splits["test"]
    bins, batch = params["evaluate"]["ece_bins"], params["evaluate"]["batch_size"]

    teacher = load_teacher(teacher_dir)
    logits = {"teacher": predict_logits(teacher, test.inputs, batch, "teacher")}
    results = {
        "teacher": {
            **M.classification_metrics(logits["teacher"], test.labels, prepared.num_labels, bins),
            "params": count_parameters(teacher),
            "size_bytes": size_on_disk(teacher_dir),
        }
    }
    predictions = pd.DataFrame({"id": test.ids, "label": test.labels, "teacher": logits["teacher"].argmax(-1)})
    for kind, root in student_dirs.items():
        per_seed, seed_logits = [], []
        seeds = seeds_in(root)
        for seed in seeds:
            model = load_model(seed_dir(root, seed))
            out = predict_logits(model, test.inputs, batch, f"{kind} seed {seed}")
            seed_logits.append(out)
            row = M.classification_metrics(out, test.labels, prepared.num_labels, bins)
            row["agreement"] = M.agreement(out, logits["teacher"])
            per_seed.append(row)
            predictions[f"{kind}_seed{seed}"] = out.argmax(-1)
        results[kind] = {
            **_mean_std(per_seed),
            "params": count_parameters(model),
            "size_bytes": size_on_disk(seed_dir(root, seeds[0])),
            "seeds": len(seeds),
        }
        logits[kind] = np.concatenate(seed_logits)  # pooled over seeds for the reliability diagram
    labels_pooled = {k: np.tile(test.labels, len(v) // len(test.labels)) for k, v in logits.items()}
    reliability = {k: pd.DataFrame(M.reliability_bins(v, labels_pooled[k], bins)) for k, v in logits.items()}
    return results, predictions, reliability
