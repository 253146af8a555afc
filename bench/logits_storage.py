"""Teacher-logits storage: bytes per row on disk, and what storing only the top k logits costs.

1. Bytes per row (file size / rows) for C = 2, 10, 1,000 classes: the format before this change (variable
   lists, Parquet defaults), the current full format (``write_logits``) and top-k (``teacher.logits_top_k``,
   k = 5, 20 where k < C); synthetic teacher-like logits (one class ahead, the rest Gaussian), and the real
   digits teacher's train logits.
2. How close the rebuilt soft targets are: mean total-variation distance between ``softmax(z/T)`` of the full
   logits and of the rebuilt ones, at T = 1, 4, 20, for the rebuild used (``logits_top_k.rebuild``) and three
   simpler ones: the rest at ``ℓ − log m`` whatever T (exact at T = 1 only), at their mean ``μ``, or dropped
   (the top k renormalised).
3. Accuracy: KD students (the distill stage's own function, same seeds, data order and steps) on full logits
   and on top-k logits written and read back through the pipeline's files; digits (10 classes, k = 1, 2, 3) and a
   synthetic 200-class ``make_classification`` set (k = 1, 5, 20), each against hard-label students.

  python bench/logits_storage.py                 # ~18 minutes on 2 shared cores
  python bench/logits_storage.py --show bench/results/logits_storage.json

Writes bench/results/logits_storage.json and prints the Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy.special import softmax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distillery.data.prepare import prepare  # noqa: E402
from distillery.evaluation.evaluate import evaluate  # noqa: E402
from distillery.models.inference import split_logits  # noqa: E402
from distillery.io import write_logits  # noqa: E402
from distillery.logits_top_k import compress, rebuild  # noqa: E402
from distillery.methods import HARD, get_method  # noqa: E402
from distillery.params import validate  # noqa: E402
from distillery.data.prepared import SPLITS, load_prepared  # noqa: E402
from distillery.training.students import train_students  # noqa: E402
from distillery.training.teacher import build_teacher, load_teacher_and_tokenizer  # noqa: E402

TEMPERATURES = (1.0, 4.0, 20.0)


def write_before(path: Path, ids: np.ndarray, logits: np.ndarray) -> None:
    """The format before this change: ``logits`` a variable-length list column, Parquet's default writer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets = pa.array(np.arange(0, logits.size + 1, logits.shape[1], dtype=np.int32))
    pq.write_table(pa.table({"id": pa.array(ids.astype(np.int64)),
                             "logits": pa.ListArray.from_arrays(offsets, pa.array(logits.reshape(-1)))}), path)


def bytes_per_row(ids: np.ndarray, logits: np.ndarray, work: Path) -> dict:
    """File size / rows of each format for these logits."""
    out = {}
    write_before(work / "before.parquet", ids, logits)
    out["before"] = (work / "before.parquet").stat().st_size / len(ids)
    write_logits(work / "full.parquet", ids, logits)
    out["full"] = (work / "full.parquet").stat().st_size / len(ids)
    for k in (5, 20):
        if k < logits.shape[1]:
            write_logits(work / f"top{k}.parquet", ids, logits, top_k=k)
            out[f"top_{k}"] = (work / f"top{k}.parquet").stat().st_size / len(ids)
    return out


def teacher_like(rows: int, classes: int, seed: int = 0) -> np.ndarray:
    """Synthetic logits: N(0, 2²) for every class, +8 on one random class (a confident teacher)."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.normal(size=(rows, classes))
    z[np.arange(rows), rng.integers(0, classes, rows)] += 8.0
    return z.astype(np.float32)


def with_rest(kept: dict, rest: np.ndarray, classes: int) -> np.ndarray:
    """The stored top-k logits, every other class at ``rest`` (N,)."""
    out = np.repeat(rest[:, None], classes, axis=1)
    np.put_along_axis(out, kept["index"].astype(np.int64), kept["top"].astype(np.float64), axis=1)
    return out


def fidelity(logits: np.ndarray, ks: list[int]) -> dict:
    """Mean total-variation distance between the full and the rebuilt soft targets, per k, rebuild and T."""
    z = logits.astype(np.float64)
    c = z.shape[1]
    out = {}
    for k in ks:
        kept = compress(z, k)
        mu, lse = kept["rest_mean"].astype(np.float64), kept["rest_lse"].astype(np.float64)
        for T in TEMPERATURES:
            p = softmax(z / T, axis=1)
            variants = {
                "rebuild": rebuild(kept["index"], kept["top"], kept["rest_mean"], kept["rest_lse"], c, T),
                "lse_only": with_rest(kept, lse - np.log(c - k), c),  # r = ℓ − log m at every T
                "mean_only": with_rest(kept, mu, c),  # r = μ at every T
            }
            q = {name: softmax(v.astype(np.float64) / T, axis=1) for name, v in variants.items()}
            dropped = np.zeros_like(p)
            np.put_along_axis(dropped, kept["index"].astype(np.int64), softmax(kept["top"].astype(np.float64) / T,
                                                                               axis=1), axis=1)
            q["dropped"] = dropped
            for name, qq in q.items():
                out.setdefault(f"k={k}", {}).setdefault(name, {})[f"T={T:g}"] = float(0.5 * np.abs(p - qq).sum(1).mean())
    return out


def synthetic_200(path: Path, seed: int = 0) -> None:
    """A 200-class ``make_classification`` set as an npz source (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=24_000, n_features=40, n_informative=30, n_redundant=0, n_classes=200,
                               n_clusters_per_class=1, class_sep=2.0, random_state=seed)
    np.savez(path, x_train=x[:20_000].astype(np.float32), y_train=y[:20_000], x_test=x[20_000:].astype(np.float32),
             y_test=y[20_000:])


def raw_params(source: str, args, teacher: str, student: str) -> dict:
    seeds = [int(s) for s in args.seeds.split(",")]
    return {"data": {"source": source},
            "teacher": {"model": {"hidden_sizes": [int(h) for h in teacher.split(",")]},
                        "train": {"max_steps": 4000, "eval_steps": 100, "logging_steps": 100}},
            "student": {"model": {"hidden_sizes": [int(h) for h in student.split(",")]}},
            "train": {"seeds": seeds, "max_steps": args.steps, "eval_steps": args.steps, "logging_steps": 100,
                      "save_steps": args.steps},
            "kd": {"method": "kd", "T": args.T, "alpha": args.alpha}}


def accuracy_cost(name: str, source: str, ks: list[int], args, teacher: str, student: str) -> dict:
    """Teacher, hard students, KD students on full logits and on top-k logits for each k (files written and read
    back by the pipeline's functions), all in ``./name``."""
    root = Path(name)
    params = validate(raw_params(source, args, teacher, student), "bench")
    prepare(params["data"], root / "prepared", root=Path("."))
    prepared = load_prepared(root / "prepared")
    build_teacher(params, prepared, root / "teacher")
    model, tokenizer = load_teacher_and_tokenizer(root / "teacher")
    logits = {split: split_logits(model, tokenizer, prepared.splits[split], 1024, split) for split in SPLITS}
    dirs = {"full": (root / "logits_full", None), **{f"top_{k}": (root / f"logits_top{k}", k) for k in ks}}
    for out, k in dirs.values():
        for split in SPLITS:
            write_logits(out / f"{split}.parquet", prepared.splits[split].ids, logits[split], top_k=k)
    result = {"classes": prepared.num_labels, "rows": {k: len(v.ids) for k, v in prepared.splits.items()},
              "bytes_per_row_train": {label: (out / "train.parquet").stat().st_size / len(prepared.splits["train"].ids)
                                      for label, (out, _) in dirs.items()},
              "fidelity_train": fidelity(logits["train"], ks)}
    start = time.perf_counter()
    train_students(HARD, params, prepared, root / "hard")
    result["hard_seconds"] = time.perf_counter() - start
    method = get_method("kd")
    students = {}
    for label, (out, k) in dirs.items():
        start = time.perf_counter()
        train_students(method, params, prepared, root / label, logits_dir=out)
        seconds = time.perf_counter() - start
        metrics = evaluate(params, prepared, root / "teacher", {"kd": root / label, "hard": root / "hard"}).metrics
        students[label] = {"seconds": seconds, "accuracy": metrics["kd"]["accuracy"],
                           "accuracy_std": metrics["kd"]["accuracy_std"], "ece": metrics["kd"]["ece"],
                           "agreement": metrics["kd"]["agreement"],
                           "minus_hard": metrics["comparison"]["kd_minus_hard_accuracy"],
                           "minus_hard_ci": [metrics["comparison"]["kd_minus_hard_ci_low"],
                                             metrics["comparison"]["kd_minus_hard_ci_high"]]}
        print(f"{name} {label}: {students[label]['accuracy']:.4f} in {seconds:.0f} s", flush=True)
    result |= {"teacher": {k: metrics["teacher"][k] for k in ("accuracy", "ece")},
               "hard": {k: metrics["hard"][k] for k in ("accuracy", "accuracy_std")}, "students": students}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--T", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--skip-200", action="store_true", help="digits only")
    parser.add_argument("--show", type=Path, help="print the tables of a results file and stop")
    args = parser.parse_args()
    if args.show:
        print(tables(json.loads(args.show.read_text())))
        return
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="logits-storage-"))
    os.chdir(work)  # checkpoints and data go here
    sizes = {}
    for classes, rows in ((2, 20_000), (10, 20_000), (1000, 2_000)):
        ids = np.random.default_rng(1).permutation(3 * rows)[:rows]  # shuffled, gapped ids
        sizes[str(classes)] = {"rows": rows, **bytes_per_row(ids, teacher_like(rows, classes), work)}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/logits_storage.py", *sys.argv[1:]]),
              "device": platform.processor() or "cpu", "torch": torch.__version__, "threads": 1, "args": vars(args),
              "bytes_per_row_synthetic": sizes}
    result["digits"] = accuracy_cost("digits", "sklearn:digits", [1, 2, 3], args, "256,256", "16")
    if not args.skip_200:
        synthetic_200(Path("synthetic200.npz"))
        result["synthetic_200"] = accuracy_cost("synthetic_200", "npz:synthetic200.npz", [1, 5, 20], args,
                                                "512,512", "32")
    path = REPO / "bench" / "results" / "logits_storage.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(tables(result))


def tables(result: dict) -> str:
    lines = [f"{result['device']}, {result['date'][:10]}, `{result['command']}`", "",
             "| classes C | goal 4·C + 8 | before | full | top 5 | top 20 |", "|---|---|---|---|---|---|"]
    for c, row in result["bytes_per_row_synthetic"].items():
        cells = [f"{row[key]:.1f}" if key in row else "—" for key in ("before", "full", "top_5", "top_20")]
        lines.append(f"| {c} | {4 * int(c) + 8} | " + " | ".join(cells) + " |")
    for name in ("digits", "synthetic_200"):
        if name not in result:
            continue
        r = result[name]
        lines += ["", f"**{name}** ({r['classes']} classes, {r['rows']['train']} train rows): teacher "
                      f"{r['teacher']['accuracy']:.4f}; hard students {r['hard']['accuracy']:.4f} ± "
                      f"{r['hard']['accuracy_std']:.4f}", "",
                  "| teacher logits | bytes/row | KD accuracy | − full, points | − hard, points (95 % CI) | agreement | "
                  "TV at T=1 / 4 / 20 |", "|---|---|---|---|---|---|---|"]
        full = r["students"]["full"]["accuracy"]
        for label, s in r["students"].items():
            tv = "—" if label == "full" else " / ".join(
                f"{r['fidelity_train'][label.replace('top_', 'k=')]['rebuild'][f'T={T:g}']:.4f}" for T in TEMPERATURES)
            lines.append(f"| {label} | {r['bytes_per_row_train'][label]:.1f} | {s['accuracy']:.4f} ± "
                         f"{s['accuracy_std']:.4f} | {100 * (s['accuracy'] - full):+.2f} | {100 * s['minus_hard']:+.2f} "
                         f"({100 * s['minus_hard_ci'][0]:+.2f} to {100 * s['minus_hard_ci'][1]:+.2f}) | "
                         f"{s['agreement']:.4f} | {tv} |")
        lines += ["", "| soft targets: mean TV to the full ones | " + " | ".join(
            f"T = {T:g}" for T in TEMPERATURES) + " |", "|---|" + "---|" * len(TEMPERATURES)]
        for k, variants in r["fidelity_train"].items():
            for variant, by_t in variants.items():
                lines.append(f"| {k}, {variant} | " + " | ".join(f"{by_t[f'T={T:g}']:.4f}" for T in TEMPERATURES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
