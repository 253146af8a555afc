"""The ceiling of a transfer-set run: hard-label students trained on every label the source has (the labelled
rows and the ``rest`` rows with their labels put back), beside the distilled and hard students of the run.

Run after `dvc repro` of a preset with ``data.transfer.rest: true`` (e.g. sst2-minilm-transfer), from the repo
root; it reads params.yaml, data/prepared, data/transfer and reports/metrics.json, trains the students with the
hard_baseline stage's own function (same architecture and seeds) in a temporary directory and writes
bench/results/hard_all_<preset>.json and its validation curves, hard_all_<preset>.png:

  make preset PRESET=sst2-minilm-transfer && dvc repro && python bench/hard_all.py [--passes 3]

A ceiling has to be one: the students train for ``--passes`` passes over every label (``--max-steps`` to give the
steps instead) and end at their best validation checkpoint (``train.select: best``, evaluations every
``train.eval_steps``); the JSON and the plot give each seed's validation curve and the step it picked. It prints
the accuracies and the fraction of the teacher–hard gap that KD closes, (KD − hard) / (teacher − hard), and the
same for the all-labels student.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distillery.models.inference import split_logits  # noqa: E402
from distillery.io import write_json  # noqa: E402
from distillery.methods import HARD  # noqa: E402
from distillery.models.zoo import load_model  # noqa: E402
from distillery.params import load_params  # noqa: E402
from distillery.data.prepared import load_prepared  # noqa: E402
from distillery.training.students import seed_dir, train_students  # noqa: E402
from distillery.models.text import saved_tokenizer  # noqa: E402
from distillery.data.transfer import TRANSFER_DIR, load_transfer, with_source_labels  # noqa: E402
from distillery.evaluation.plots import pyplot, save_figure  # noqa: E402
from distillery.evaluation.report import load_selections  # noqa: E402


def plot_curves(selections: list[dict], path: Path, title: str) -> None:
    """Validation accuracy against step for each seed, the picked checkpoint marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for record in selections:
        steps = [int(s) for s in record["evaluations"]]
        line, = ax.plot(steps, list(record["evaluations"].values()), marker=".", label=f"seed {record['seed']}")
        ax.plot([record["step"]], [record["validation_accuracy"]], marker="o", markersize=9, fillstyle="none",
                color=line.get_color())
    ax.set(xlabel="step", ylabel="validation accuracy", title=title)
    ax.legend(title="circle: picked", fontsize=8)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=float, default=3.0, help="passes over every label (default 3)")
    parser.add_argument("--max-steps", type=int, help="steps instead of --passes")
    args = parser.parse_args()
    params = copy.deepcopy(load_params())
    prepared = load_prepared(Path("data/prepared"))
    everything = with_source_labels(prepared, load_transfer(TRANSFER_DIR))
    rows = len(everything.splits["train"].ids)
    train = params["train"]
    train["max_steps"] = args.max_steps or math.ceil(args.passes * rows / train["batch_size"])
    train["select"] = "best"
    test = prepared.splits["test"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hard_all"
        train_students(HARD, params, everything, out, live_root=Path(tmp) / "curves")
        selections = load_selections(Path(tmp) / "curves")
        accuracies = []
        for seed in params["train"]["seeds"]:
            model = load_model(seed_dir(out, seed))
            logits = split_logits(model, saved_tokenizer(seed_dir(out, seed)), test,
                                  params["evaluate"]["batch_size"], f"hard_all seed {seed}", "student-test")
            accuracies.append(float((logits.argmax(1) == test.labels).mean()))
    metrics = json.loads(Path("reports/metrics.json").read_text())
    teacher, kd, hard = (metrics[k]["accuracy"] for k in ("teacher", "kd", "hard"))
    result = {
        "preset": params.get("preset"), "labelled_rows": len(prepared.splits["train"].ids),
        "all_label_rows": len(everything.splits["train"].ids), "seeds": params["train"]["seeds"],
        "teacher": teacher, "kd": kd, "hard": hard,
        "hard_all": float(np.mean(accuracies)), "hard_all_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1
        else 0.0, "hard_all_per_seed": accuracies,
        "kd_gap_closed": (kd - hard) / (teacher - hard) if teacher != hard else None,
        "hard_all_gap_closed": (float(np.mean(accuracies)) - hard) / (teacher - hard) if teacher != hard else None,
        "max_steps": train["max_steps"], "passes": round(train["max_steps"] * train["batch_size"] / rows, 2),
        "select": "best", "picked_steps": [r["step"] for r in selections],
        "validation_curves": {str(r["seed"]): r["evaluations"] for r in selections},
        "seconds": round(time.perf_counter() - start, 1),
    }
    name = f"hard_all_{params.get('preset') or 'params'}"
    write_json(REPO / "bench/results" / f"{name}.json", result)
    plot_curves(selections, REPO / "bench/results" / f"{name}.png",
                f"all {rows:,} labels, hard students: validation accuracy")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
