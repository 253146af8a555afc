"""Stored vs live teacher: training wall time of KD on stored logits, KD with the teacher run on every batch,
and the hard-label student, for the same steps, through `distillery.training.trainer.train_model`.

Digits: the default params (teacher MLP 256-256, student MLP 16, 1,500 steps of 64, evaluation every 100 steps,
checkpoints every 500, 1 thread). SST-2 (`sst2-minilm` preset: MiniLM-L6 teacher, 2-layer BERT student, 2 threads):
a short budget (`--text-steps`, default 100 steps of 32 sentences, no evaluation or checkpoints), on that many
batches of a fixed random subset of SST-2 train. The live teacher is plain KD declared with `needs` live_teacher
(the path fitnet/at/rkd/sp/tinybert take); its stored logits are the same teacher's, so both KD runs train the
same student. The three runs alternate and repeat; medians. Writes bench/results/live_teacher.json
(`--skip-text`: live_teacher_digits.json).

Run: `python bench/live_teacher.py [--repeats 3] [--text-steps 100] [--text-repeats 3]`
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from distillery.models.inference import predict_logits, predict_text_logits
from distillery.methods import HARD, Method, get_method
from distillery.models.zoo import build_model
from distillery.params import validate
from distillery.training.runs import seeded
from distillery.training.trainer import TensorDictDataset, train_model

KD = get_method("kd")
KD_LIVE = Method(name="kd_live", paper=KD.paper, loss=KD.loss, needs=frozenset({"live_teacher"}),
                 description="KD on the teacher's logits computed on every batch")
RESULTS = Path(__file__).resolve().parent / "results" / "live_teacher.json"


def timed(make_model, data: dict, train_params: dict, method: Method, hp: dict, teacher=None, **text):
    """Seconds of one ``train_model`` run from seed 0, and the trained model."""
    seeded(0)
    model = make_model()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = train_model(model, **data[method is KD], train_params=train_params, seed=0, checkpoint_dir=Path(tmp),
                            method=method, hyperparams=hp, teacher=teacher, **text)
        return time.perf_counter() - start, model


def compare(name: str, make_model, data: dict, teacher, train_params: dict, hp: dict, repeats: int, **text) -> dict:
    """Median seconds of hard, KD stored and KD live, alternating; ``data[True]`` holds the stored logits."""
    times = {"hard": [], "kd_stored": [], "kd_live": []}
    for _ in range(repeats):
        hard, _ = timed(make_model, data, train_params, HARD, {}, **text)
        stored, stored_model = timed(make_model, data, train_params, KD, hp, **text)
        live, live_model = timed(make_model, data, train_params, KD_LIVE, hp, teacher=teacher, **text)
        for key, seconds in zip(times, (hard, stored, live)):
            times[key].append(round(seconds, 3))
    diff = max((a - b).abs().max().item() for a, b in zip(stored_model.parameters(), live_model.parameters()))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"case": name, "steps": train_params["max_steps"], "batch_size": train_params["batch_size"],
            "threads": torch.get_num_threads(), "seconds": times, "median_s": med,
            "stored_over_hard": round(med["kd_stored"] / med["hard"], 3),
            "live_over_stored": round(med["kd_live"] / med["kd_stored"], 3),
            "max_weight_diff_stored_vs_live": diff}


def digits_case(repeats: int) -> dict:
    params = validate({})
    torch.set_num_threads(params["cpu_threads"])
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x = torch.from_numpy((digits.data / 16.0).astype(np.float32)).reshape(-1, 8, 8)[order]
    y = torch.from_numpy(digits.target[order].astype(np.int64))
    n_train, n_val = 1221, 216  # the default split's sizes (test 20 %, validation 15 % of the rest)
    labels = [str(i) for i in range(10)]
    seeded(0)
    teacher = build_model(params["teacher"]["model"], [8, 8], labels).eval().requires_grad_(False)
    logits = torch.from_numpy(predict_logits(teacher, x.numpy()))
    parts = {"train_data": slice(0, n_train), "eval_data": slice(n_train, n_train + n_val)}
    data = {stored: {k: TensorDictDataset(features=x[s], labels=y[s], **({"teacher_logits": logits[s]} if stored else {}))
                     for k, s in parts.items()} for stored in (False, True)}
    return compare("digits (default)", lambda: build_model(params["student"]["model"], [8, 8], labels), data, teacher,
                   params["train"], KD.hyperparams(params["kd"]), repeats)


def sst2_case(repeats: int, steps: int) -> dict:
    import sst2_data
    from distillery.training.teacher import text_collator
    from distillery.models.text import build_text_model
    from distillery.models.tokenization import tokenize, training_columns

    params = sst2_data.preset()
    torch.set_num_threads(params["cpu_threads"])
    batch = params["train"]["batch_size"]
    seeded(0)
    teacher, tokenizer = build_text_model(params["teacher"]["model"], sst2_data.LABELS, "teacher.model")
    teacher = teacher.eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as cache:
        tokenized = tokenize(sst2_data.sentences(steps * batch + 64), tokenizer, "bench-sst2", Path(cache))
        logits = predict_text_logits(teacher, tokenizer, tokenized, 128)
        train, val = np.arange(steps * batch), np.arange(steps * batch, len(logits))
        data = {stored: {"train_data": training_columns(tokenized.select(train), logits[train] if stored else None),
                         "eval_data": training_columns(tokenized.select(val), logits[val] if stored else None)}
                for stored in (False, True)}
        train_params = {**params["train"], "max_steps": steps, "eval_steps": 10 * steps, "save_steps": 10 * steps}
        return compare(f"sst2-minilm ({steps} steps)",
                       lambda: build_text_model(params["student"]["model"], sst2_data.LABELS, "student.model")[0],
                       data, teacher, train_params, KD.hyperparams(params["kd"]), repeats,
                       tokenizer=tokenizer, data_collator=text_collator(tokenizer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--text-steps", type=int, default=100)
    parser.add_argument("--text-repeats", type=int, default=None, help="SST-2's repeats (default: --repeats)")
    parser.add_argument("--skip-text", action="store_true",
                        help="digits only (no ../shared/data or MiniLM needed), into live_teacher_digits.json")
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as every stage does (distillery.cli)
    cases = [digits_case(args.repeats)]
    if not args.skip_text:
        cases.append(sst2_case(args.text_repeats or args.repeats, args.text_steps))
    out = RESULTS.with_name("live_teacher_digits.json") if args.skip_text else RESULTS
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "torch": torch.__version__,
                                   "cases": cases}, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}; medians of alternating runs")
    print("| case | steps × batch | threads | runs | hard s | KD stored s | KD live s | stored / hard | live / stored |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        m = c["median_s"]
        print(f"| {c['case']} | {c['steps']} × {c['batch_size']} | {c['threads']} | {len(c['seconds']['hard'])} | {m['hard']:.1f} | "
              f"{m['kd_stored']:.1f} | {m['kd_live']:.1f} | {c['stored_over_hard']:.2f} | {c['live_over_stored']:.2f} |")


if __name__ == "__main__":
    main()
