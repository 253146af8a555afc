"""Training-step cost of the one training path on a real model: the `sst2-minilm` teacher (MiniLM-L6) fine-tuned
through `distillery.training.train_model` as the teacher stage calls it (`distillery.runs.train_once`: Trainer, DVCLive
curves, early stopping, evaluation and checkpoints at the preset's cadence) vs a plain PyTorch loop over batches of the same data.

Same model and initial weights, data (random SST-2 train sentences, max_length 64), collator (dynamic padding),
batch 32, optimiser (AdamW, weight decay off biases and LayerNorms, linear warm-up schedule, gradient clipping at
1.0) and threads (the preset's 2). Step time: the interval between two step starts (data loading, forward,
backward, optimiser and whatever the loop does between steps); the median is the steady-state step, the mean adds
evaluation, checkpoints and logging. The two paths alternate and repeat. Writes bench/results/trainer_step_minilm.json.

Run: `python bench/trainer_step_minilm.py [--steps 40] [--repeats 2]`
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
from transformers import TrainerCallback, get_linear_schedule_with_warmup

import sst2_data
from distillery.runs import live_callback, seeded
from distillery.teacher import text_collator
from distillery.text_models import build_text_model
from distillery.tokenization import tokenize, training_columns
from distillery.training import train_model

RESULTS = Path(__file__).resolve().parent / "results" / "trainer_step_minilm.json"


class StepClock(TrainerCallback):
    """Times between the starts of consecutive steps (the last: to the end of training)."""

    def __init__(self):
        self.starts: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.starts.append(time.perf_counter())

    def on_train_end(self, args, state, control, **kwargs):
        self.starts.append(time.perf_counter())

    def steps(self) -> list[float]:
        return list(np.diff(self.starts))


class PaddedLengths:
    """The collator, recording each batch's padded length."""

    def __init__(self, collator):
        self.collator, self.lengths = collator, []

    def __call__(self, features):
        batch = self.collator(features)
        self.lengths.append(batch["input_ids"].shape[1])
        return batch


def plain_loop(model, data, collator, tp: dict, steps: int) -> list[float]:
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tp["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=tp["learning_rate"])
    schedule = get_linear_schedule_with_warmup(optimizer, tp["warmup_steps"], steps)
    loader = torch.utils.data.DataLoader(data, batch_size=tp["batch_size"], shuffle=True, collate_fn=collator,
                                         generator=torch.Generator().manual_seed(0))
    model.train()
    starts = []
    while len(starts) < steps:
        for batch in loader:
            starts.append(time.perf_counter())
            labels = batch.pop("labels")
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tp["max_grad_norm"])
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            if len(starts) == steps:
                break
    starts.append(time.perf_counter())
    return list(np.diff(starts))


def summary(times: list[list[float]], lengths: list[int]) -> dict:
    flat = [t for run in times for t in run[1:]]  # each run's first step (warm-up) left out
    return {"median_s": round(statistics.median(flat), 4), "mean_s": round(statistics.mean(flat), 4),
            "median_padded_length": float(np.median(lengths)), "steps_s": [[round(t, 4) for t in r] for r in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--eval-rows", type=int, default=150, help="the preset's validation: 1.5 %% of 10,000")
    args = parser.parse_args()
    params = sst2_data.preset()
    tp = {**params["teacher"]["train"], "max_steps": args.steps}
    torch.set_flush_denormal(True)  # as every stage does (distillery.cli)
    torch.set_num_threads(params["cpu_threads"])

    def make_model():
        seeded(params["teacher"]["seed"])
        return build_text_model(params["teacher"]["model"], sst2_data.LABELS, "teacher.model")

    _, tokenizer = make_model()
    with tempfile.TemporaryDirectory() as tmp:
        tokenized = tokenize(sst2_data.sentences(args.steps * tp["batch_size"] + args.eval_rows), tokenizer,
                             "bench-step", Path(tmp))
        train = training_columns(tokenized.select(range(args.steps * tp["batch_size"])))
        val = training_columns(tokenized.select(range(args.steps * tp["batch_size"], len(tokenized))))
        times = {"plain": [], "trainer": []}
        lengths = {"plain": PaddedLengths(text_collator(tokenizer)), "trainer": PaddedLengths(text_collator(tokenizer))}
        for repeat in range(args.repeats):
            times["plain"].append(plain_loop(make_model()[0], train, lengths["plain"], tp, args.steps))
            clock = StepClock()
            run = Path(tmp) / f"run{repeat}"
            train_model(make_model()[0], train, val, tp, seed=params["teacher"]["seed"], checkpoint_dir=run / "trainer",
                        callbacks=[live_callback(run / "live", None), clock], tokenizer=tokenizer,
                        early_stopping_patience=tp["early_stopping_patience"], data_collator=lengths["trainer"])
            times["trainer"].append(clock.steps())
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "steps": args.steps, "repeats": args.repeats,
              "batch_size": tp["batch_size"], "eval_steps": tp["eval_steps"],
              **{k: summary(times[k], lengths[k].lengths) for k in times}}
    result["ratio_median"] = round(result["trainer"]["median_s"] / result["plain"]["median_s"], 3)
    result["ratio_mean"] = round(result["trainer"]["mean_s"] / result["plain"]["mean_s"], 3)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {result['threads']} threads; MiniLM-L6 teacher step, "
          f"batch {tp['batch_size']}, {args.steps} steps x {args.repeats} alternating runs (first step of each left out)")
    print("| loop | median s/step | mean s/step | median padded length | ratio (median) |\n|---|---|---|---|---|")
    for name, key in (("plain PyTorch loop", "plain"), ("teacher stage's Trainer (`train_model`)", "trainer")):
        r = result[key]
        print(f"| {name} | {r['median_s']:.3f} | {r['mean_s']:.3f} | {r['median_padded_length']:.0f} | "
              f"{r['median_s'] / result['plain']['median_s']:.2f} |")


if __name__ == "__main__":
    main()
