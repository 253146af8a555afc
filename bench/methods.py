"""Distillation methods side by side: the same teacher, data, seeds and step budget, one process.

Every method that fits the models trains its students (the distill stage's own function), then the
evaluate stage's own scoring compares them with the hard-label students (every student at its best validation
checkpoint of evaluations every 100 steps, the pipeline's default; ``--select last``: at its last step): test
accuracy (and errors),
the gap to the hard students with its paired bootstrap 95 % interval, ECE, agreement with the teacher,
and training wall time relative to `kd` and to the hard students, all measured in this run.

  python bench/methods.py                                   # digits, the default's models and budget
  python bench/methods.py --name mnist --source npz:../shared/data/mnist.npz --teacher 1200,1200 \\
      --student 800,800 --teacher-steps 6000 --steps 4000 --batch 128 --seeds 0,1

Writes bench/results/methods_<name>.json and prints the Markdown table. Runs on a GPU unchanged.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distillery.data.prepare import prepare  # noqa: E402
from distillery.errors import DistilleryError  # noqa: E402
from distillery.evaluation.evaluate import evaluate  # noqa: E402
from distillery.models.inference import split_logits  # noqa: E402
from distillery.io import write_logits  # noqa: E402
from distillery.methods import HARD, METHODS, get_method  # noqa: E402
from distillery.params import validate  # noqa: E402
from distillery.data.prepared import SPLITS, load_prepared  # noqa: E402
from distillery.training.students import train_students  # noqa: E402
from distillery.training.teacher import build_teacher, load_teacher_and_tokenizer  # noqa: E402


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def raw_params(args, method: str) -> dict:
    teacher_train = {"max_steps": args.teacher_steps, "batch_size": args.batch, "eval_steps": args.teacher_eval,
                     "learning_rate": args.teacher_lr, "logging_steps": 100}
    student_train = {"seeds": sizes(args.seeds), "max_steps": args.steps, "batch_size": args.batch,
                     "learning_rate": args.lr, "eval_steps": args.eval_steps, "logging_steps": 100,
                     "save_steps": args.steps, "select": args.select}
    teacher = {"model": {"arch": args.arch, "dropout": args.teacher_dropout,
                         **({"hidden_sizes": sizes(args.teacher)} if args.arch == "mlp" else
                            {"channels": sizes(args.teacher), "hidden_size": args.dense})},
               "train": teacher_train}
    student = {"model": {"arch": args.arch, "dropout": 0.0,
                         **({"hidden_sizes": sizes(args.student)} if args.arch == "mlp" else
                            {"channels": sizes(args.student), "hidden_size": args.dense // 2})}}
    if method == "born_again":
        student = {"model": teacher["model"]}
    return {"data": {"source": args.source}, "teacher": teacher, "student": student, "train": student_train,
            "teachers": {"second": {"seed": 1}} if method == "multi_teacher" else {},
            "kd": {"method": method, "T": args.T, "alpha": args.alpha}}


def score_logits(params, prepared, teacher_dir: Path, out: Path) -> None:
    teacher, tokenizer = load_teacher_and_tokenizer(teacher_dir)
    for split in SPLITS:
        write_logits(out / f"{split}.parquet", prepared.splits[split].ids,
                     split_logits(teacher, tokenizer, prepared.splits[split], 1024, split))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="digits")
    parser.add_argument("--source", default="sklearn:digits")
    parser.add_argument("--arch", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--teacher", default="256,256", help="hidden sizes (mlp) or channels (cnn)")
    parser.add_argument("--student", default="16")
    parser.add_argument("--dense", type=int, default=64, help="cnn: the teacher's dense layer (student: half)")
    parser.add_argument("--teacher-dropout", type=float, default=0.2)
    parser.add_argument("--teacher-steps", type=int, default=4000)
    parser.add_argument("--teacher-eval", type=int, default=100)
    parser.add_argument("--teacher-lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-steps", type=int, default=100, help="students: validation every this many steps")
    parser.add_argument("--select", default="best", choices=["best", "last"],
                        help="students: the checkpoint each ends with (train.select; best: on validation)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--T", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--show", type=Path, help="print the table of a results file and stop")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m not in ("tinybert",)))
    args = parser.parse_args()
    if args.show:
        print(table(json.loads(args.show.read_text())))
        return

    import torch

    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="methods-"))
    os.chdir(work)  # checkpoints and the pipeline's files go here
    base = validate(raw_params(args, "kd"), "bench")
    prepare(base["data"], Path("data/prepared"), root=REPO)
    prepared = load_prepared(Path("data/prepared"))
    start = time.perf_counter()
    build_teacher(base, prepared, Path("models/teacher"))
    teacher_seconds = time.perf_counter() - start
    score_logits(base, prepared, Path("models/teacher"), Path("data/teacher_logits"))
    start = time.perf_counter()
    train_students(HARD, base, prepared, Path("models/students/hard"))
    hard_seconds = time.perf_counter() - start
    print(f"teacher {teacher_seconds:.0f} s, hard students {hard_seconds:.0f} s", flush=True)

    rows, skipped = {}, {}
    for method in args.methods.split(","):
        try:
            params = validate(raw_params(args, method), "bench")
        except DistilleryError as exc:
            skipped[method] = str(exc)
            print(f"skip {method}: {exc}", flush=True)
            continue
        if method == "born_again":
            continue  # its students are the teacher's architecture: not this table's budget
        if params["teachers"] and not Path("data/teachers/second").exists():
            build_teacher(params, prepared, Path("models/teachers/second"), name="second")
            score_logits(params, prepared, Path("models/teachers/second"), Path("data/teachers/second"))
        out = Path("models/students") / method
        start = time.perf_counter()
        try:
            train_students(get_method(method), params, prepared, out, logits_dir=Path("data/teacher_logits"))
        except DistilleryError as exc:
            skipped[method] = str(exc)
            print(f"skip {method}: {exc}", flush=True)
            continue
        seconds = time.perf_counter() - start
        metrics = evaluate(params, prepared, Path("models/teacher"), {"kd": out, "hard": Path("models/students/hard")}).metrics
        rows[method] = {"seconds": seconds, "student": metrics["kd"], "comparison": metrics["comparison"]}
        print(f"{method}: {metrics['kd']['accuracy']:.4f} in {seconds:.0f} s", flush=True)
    teacher_metrics = metrics["teacher"]
    hard = metrics["hard"]
    test_rows = len(prepared.splits["test"].ids)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    result = {"name": args.name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/methods.py", *sys.argv[1:]]), "device": device,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "args": vars(args),
              "teacher": {k: teacher_metrics[k] for k in ("accuracy", "ece")}, "teacher_seconds": teacher_seconds,
              "hard": {k: hard[k] for k in ("accuracy", "accuracy_std", "ece", "ece_std")}, "hard_seconds": hard_seconds,
              "test_rows": test_rows, "methods": rows, "skipped": skipped}
    path = REPO / "bench" / "results" / f"methods_{args.name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def _checkpoint(args: dict) -> str:
    """Which checkpoint the students were scored at (results before ``--select`` existed: the last step)."""
    if args.get("select", "last") == "last":
        return "last step"
    return f"best validation checkpoint (every {args['eval_steps']} steps)"


def table(result: dict) -> str:
    n, kd_seconds = result["test_rows"], result["methods"].get("kd", {}).get("seconds")
    lines = [f"{result['name']}: teacher {result['teacher']['accuracy']:.4f} "
             f"({round((1 - result['teacher']['accuracy']) * n)} test errors of {n}); hard students "
             f"{result['hard']['accuracy']:.4f} ± {result['hard']['accuracy_std']:.4f}; students at their "
             f"{_checkpoint(result['args'])}; {result['device']}, "
             f"{result['date'][:10]}; `{result['command']}`", "",
             "| method | accuracy | test errors | − hard, points (95 % CI) | ECE | agreement | time vs kd | time vs hard |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in result["methods"].items():
        s, c = row["student"], row["comparison"]
        lines.append(
            f"| `{name}` | {s['accuracy']:.4f} ± {s['accuracy_std']:.4f} | {(1 - s['accuracy']) * n:.1f} | "
            f"{100 * c['kd_minus_hard_accuracy']:+.2f} ({100 * c['kd_minus_hard_ci_low']:+.2f} to "
            f"{100 * c['kd_minus_hard_ci_high']:+.2f}) | {s['ece']:.4f} | {s['agreement']:.4f} | "
            f"{row['seconds'] / kd_seconds:.2f}× | {row['seconds'] / result['hard_seconds']:.2f}× |"
            if kd_seconds else f"| `{name}` | {s['accuracy']:.4f} | | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
