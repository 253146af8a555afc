"""Transfer sets: what a bigger one costs — the teacher scoring it, the logits file, and distill's time.

The labelled rows stay fixed (the default's digits split); the transfer set is N jittered copies of each
labelled row (``data.transfer.augment = N``, shifted by up to 1 pixel, plus Gaussian noise so that no two copies
repeat) for each N given. For each size, one run of the stages' own
functions, in one process: the transfer set built (the transfer stage's `build_transfer`), scored by one
trained teacher (transfer_logits' `split_logits`), written as that stage writes it (bytes per row on disk),
and KD students trained for a fixed number of EPOCHS over labelled ∪ transfer (steps grow with the set;
with a fixed `train.max_steps` instead, distill's time would stay flat). Growth is the slope of a
least-squares line through log(time) against log(rows): 1 is linear.

  python bench/transfer_scaling.py                      # N = 1, 4, 16, 64 on digits, 20 epochs
  python bench/transfer_scaling.py --augment 1,2,4,8 --epochs 3

Writes bench/results/transfer_scaling.json and bench/results/transfer_scaling.png and prints the table.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distillery.data.prepare import prepare  # noqa: E402
from distillery.models.inference import split_logits  # noqa: E402
from distillery.io import write_logits  # noqa: E402
from distillery.methods import get_method  # noqa: E402
from distillery.params import validate  # noqa: E402
from distillery.data.prepared import load_prepared  # noqa: E402
from distillery.training.runs import seeded  # noqa: E402
from distillery.training.students import train_students  # noqa: E402
from distillery.training.teacher import build_teacher, load_teacher_and_tokenizer  # noqa: E402
from distillery.data.transfer import build_transfer  # noqa: E402
from bench.methods import score_logits  # noqa: E402


def growth(rows: list[int], values: list[float]) -> float:
    """The slope of log(value) against log(rows): the exponent k of value ∝ rows^k."""
    return float(np.polyfit(np.log(rows), np.log(values), 1)[0])


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r["transfer_rows"] for r in result["runs"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("distill_seconds", "distill (fixed epochs)"), ("score_seconds", "teacher scoring")):
        left.loglog(rows, [r[key] for r in result["runs"]], "o-", label=f"{label}: ∝ rows^{result['growth'][key]:.2f}")
    left.set(xlabel="transfer rows", ylabel="seconds", title="Time against transfer-set size")
    left.legend()
    right.semilogx(rows, [r["bytes_per_row"] for r in result["runs"]], "o-")
    right.axhline(4 * result["classes"] + 8, color="grey", ls="--", label="4·C + 8 (float32 logits + int64 id)")
    right.set(xlabel="transfer rows", ylabel="bytes per row", title="Teacher-logits file, bytes per row")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--augment", default="1,4,16,64", help="transfer-set sizes: jittered copies per labelled row")
    parser.add_argument("--epochs", type=int, default=20, help="passes of the students over labelled ∪ transfer")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="Gaussian noise on each copy (digits' 8x8 images have only 8 one-pixel shifts, so without "
                             "it many copies repeat and the logits file compresses them)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = [int(x) for x in args.augment.split(",")]
    base = validate({"train": {"seeds": [args.seed]}, "cpu_threads": 1}, "bench")
    seeded(0)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare(base["data"], tmp / "prepared")
        prepared = load_prepared(tmp / "prepared")
        start = time.perf_counter()
        build_teacher(base, prepared, tmp / "teacher")
        teacher_seconds = time.perf_counter() - start
        teacher, tokenizer = load_teacher_and_tokenizer(tmp / "teacher")
        logits_dir = tmp / "logits"
        logits_dir.mkdir()
        score_logits(base, prepared, tmp / "teacher", logits_dir)  # the labelled splits, as bench/methods.py does
        labelled = len(prepared.splits["train"].ids)
        for n in counts:
            params = validate({"train": {"seeds": [args.seed]}, "cpu_threads": 1,
                               "data": {"transfer": {"augment": n, "jitter": 1, "noise": args.noise}}}, "bench")
            transfer = build_transfer(params["data"], prepared)
            start = time.perf_counter()
            logits = split_logits(teacher, tokenizer, transfer.as_split(), params["teacher"]["inference_batch_size"],
                                  f"augment {n}", "teacher-transfer")
            score_seconds = time.perf_counter() - start
            path = tmp / f"transfer_{n}.parquet"
            write_logits(path, transfer.ids, logits)
            steps = math.ceil(args.epochs * (labelled + len(transfer)) / params["train"]["batch_size"])
            params["train"]["max_steps"] = steps
            params["train"]["save_steps"] = params["train"]["eval_steps"] = steps
            start = time.perf_counter()
            train_students(get_method("kd"), params, prepared, tmp / f"kd_{n}", logits_dir=logits_dir,
                           transfer=(transfer, logits))
            distill_seconds = time.perf_counter() - start
            runs.append({"augment": n, "transfer_rows": len(transfer), "labelled_rows": labelled, "steps": steps,
                         "score_seconds": score_seconds, "distill_seconds": distill_seconds,
                         "file_bytes": path.stat().st_size, "bytes_per_row": path.stat().st_size / len(transfer)})
            print(f"augment {n}: {len(transfer)} rows, scored in {score_seconds:.2f} s, {runs[-1]['bytes_per_row']:.1f} "
                  f"bytes/row, distill {steps} steps in {distill_seconds:.1f} s", flush=True)
    rows = [r["transfer_rows"] for r in runs]
    result = {
        "name": "transfer_scaling", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/transfer_scaling.py " + " ".join(sys.argv[1:]), "machine": platform.processor()
        or platform.machine(), "data": base["data"]["source"], "classes": prepared.num_labels, "epochs": args.epochs, "noise": args.noise,
        "teacher_seconds": teacher_seconds, "runs": runs,
        "growth": {key: growth(rows, [r[key] for r in runs]) for key in ("score_seconds", "distill_seconds")},
    }
    out = REPO / "bench/results"
    (out / "transfer_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / "transfer_scaling.png")
    print("\n| transfer rows | student steps | teacher scoring (s) | distill (s) | distill s/step | logits bytes/row |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['transfer_rows']:,} | {r['steps']:,} | {r['score_seconds']:.2f} | {r['distill_seconds']:.1f} | "
              f"{r['distill_seconds'] / r['steps'] * 1000:.1f} ms | {r['bytes_per_row']:.1f} |")
    print(f"\ngrowth (time ∝ rows^k): distill k = {result['growth']['distill_seconds']:.2f}, "
          f"scoring k = {result['growth']['score_seconds']:.2f}")


if __name__ == "__main__":
    main()
