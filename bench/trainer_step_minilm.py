"""Training-step cost of the one training path on a real model: the `sst2-minilm` teacher (MiniLM-L6) fine-tuned
through `distillery.training.trainer.train_model` as the teacher stage calls it (via `distillery.training.runs.train_once`: Trainer,
DVCLive curves, early stopping, evaluation and checkpoints) vs a plain PyTorch loop over batches of the same data.

Same model and initial weights, data (random SST-2 train sentences, max_length 64), collator (dynamic padding),
batch 32, optimiser (AdamW, weight decay off biases and LayerNorms, linear warm-up schedule, gradient clipping at
1.0) and threads (the preset's 2). Step time: the interval between two step starts (data loading, forward,
backward, optimiser and whatever the loop does between steps); medians over the steps, each run's first left out.
The paths alternate. Writes bench/results/trainer_step_minilm.json.

Evaluation (the preset's 1,010 validation rows, batches of 256) and a checkpoint happen once, halfway; their cost is
spread over the preset's 100 steps between evaluations for the s/step at the preset's cadence. The Trainer runs twice:
validation rows in split order (before) and sorted by length (`training_columns(..., by_length=True)`, what the
stages do now).

Run: `python bench/trainer_step_minilm.py [--steps 12] [--repeats 1]`
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
from distillery.training.runs import live_callback, seeded
from distillery.training.teacher import text_collator
from distillery.models.text import build_text_model
from distillery.models.tokenization import tokenize, training_columns
from distillery.training.trainer import train_model

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
    """The collator, recording the padded length of each training batch (``rows`` rows; evaluation's have 256)."""

    def __init__(self, collator, rows: int):
        self.collator, self.rows, self.lengths = collator, rows, []

    def __call__(self, features):
        batch = self.collator(features)
        if len(batch["input_ids"]) == self.rows:
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


def profile(make_model, tokenizer, tp: dict, steps: int) -> None:
    """cProfile of the plain loop and of the Trainer path (no evaluation or checkpoint), top functions by own time."""
    import cProfile
    import pstats

    tp = {**tp, "eval_steps": 10 * steps}
    with tempfile.TemporaryDirectory() as tmp:
        train = training_columns(tokenize(sst2_data.sentences(steps * tp["batch_size"] + 64), tokenizer, "bench-step",
                                          Path(tmp)))
        val = train.select(range(64))
        runs = {"plain": lambda: plain_loop(make_model()[0], train, text_collator(tokenizer), tp, steps),
                "trainer": lambda: train_model(make_model()[0], train, val, tp, seed=0, checkpoint_dir=Path(tmp) / "t",
                                               callbacks=[live_callback(Path(tmp) / "live", None)], tokenizer=tokenizer,
                                               data_collator=text_collator(tokenizer))}
        for name, run in runs.items():
            profiler = cProfile.Profile()
            profiler.runcall(run)
            print(f"--- {name}: {steps} steps")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def summary(times: list[list[float]], lengths: list[int], eval_at: int | None = None) -> dict:
    """Median and mean step over the runs, leaving out each run's first step (warm-up) and, with ``eval_at``, the
    interval holding the evaluation and checkpoint after step ``eval_at`` and the last (the end of training);
    ``eval_save_s``: that interval less the median step."""
    skip = {0} if eval_at is None else {0, eval_at - 1, len(times[0]) - 1}
    flat = [t for run in times for i, t in enumerate(run) if i not in skip]
    out = {"median_s": round(statistics.median(flat), 4), "mean_s": round(statistics.mean(flat), 4),
           "median_padded_length": float(np.median(lengths)), "steps_s": [[round(t, 4) for t in r] for r in times]}
    if eval_at is not None:
        out["eval_save_s"] = round(statistics.median(run[eval_at - 1] for run in times) - out["median_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--eval-rows", type=int, default=1010, help="the preset's validation: 1.5 %% of SST-2 train")
    parser.add_argument("--profile", action="store_true",
                        help="instead: cProfile each path over --steps steps without evaluation; print the top functions")
    args = parser.parse_args()
    params = sst2_data.preset()
    tp = {**params["teacher"]["train"], "max_steps": args.steps, "eval_steps": args.steps // 2}
    torch.set_flush_denormal(True)  # as every stage does (distillery.cli)
    torch.set_num_threads(params["cpu_threads"])

    def make_model():
        seeded(params["teacher"]["seed"])
        return build_text_model(params["teacher"]["model"], sst2_data.LABELS, "teacher.model")

    _, tokenizer = make_model()
    n_train = args.steps * tp["batch_size"]
    paths = {"plain": None, "trainer_eval_in_order": False, "trainer": True}  # Trainer: eval rows by length?
    times = {k: [] for k in paths}
    lengths = {k: PaddedLengths(text_collator(tokenizer), tp["batch_size"]) for k in paths}
    if args.profile:
        return profile(make_model, tokenizer, tp, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        tokenized = tokenize(sst2_data.sentences(n_train + args.eval_rows), tokenizer, "bench-step", Path(tmp))
        train = training_columns(tokenized.select(range(n_train)))
        for repeat in range(args.repeats):
            for key, by_length in paths.items():
                if by_length is None:
                    times[key].append(plain_loop(make_model()[0], train, lengths[key], tp, args.steps))
                    continue
                val = training_columns(tokenized.select(range(n_train, len(tokenized))), by_length=by_length)
                clock, run = StepClock(), Path(tmp) / f"{key}{repeat}"
                train_model(make_model()[0], train, val, tp, seed=params["teacher"]["seed"],
                            checkpoint_dir=run / "trainer", callbacks=[live_callback(run / "live", None), clock],
                            tokenizer=tokenizer, early_stopping_patience=tp["early_stopping_patience"],
                            data_collator=lengths[key])
                times[key].append(clock.steps())
    preset_eval_steps = params["teacher"]["train"]["eval_steps"]
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "steps": args.steps, "repeats": args.repeats,
              "batch_size": tp["batch_size"], "eval_rows": args.eval_rows, "preset_eval_steps": preset_eval_steps,
              **{k: summary(times[k], lengths[k].lengths, None if paths[k] is None else tp["eval_steps"]) for k in paths}}
    plain = result["plain"]["median_s"]
    for key in ("trainer_eval_in_order", "trainer"):
        r = result[key]
        r["at_preset_cadence_s"] = round(r["median_s"] + r["eval_save_s"] / preset_eval_steps, 4)
        r["ratio_steady"] = round(r["median_s"] / plain, 3)
        r["ratio_at_preset_cadence"] = round(r["at_preset_cadence_s"] / plain, 3)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {result['threads']} threads; MiniLM-L6 teacher step, "
          f"batch {tp['batch_size']}, {args.steps} steps x {args.repeats} runs per path, alternating; evaluation "
          f"({args.eval_rows} rows) + checkpoint once, after step {tp['eval_steps']}, spread over the preset's "
          f"{preset_eval_steps} steps")
    print("| loop | median s/step | eval + checkpoint s | s/step at the preset's cadence | median padded train length "
          "| ratio (steady) | ratio (preset cadence) |\n|---|---|---|---|---|---|---|")
    print(f"| plain PyTorch loop (no evaluation) | {plain:.3f} | – | {plain:.3f} | "
          f"{result['plain']['median_padded_length']:.0f} | 1.00 | 1.00 |")
    for name, key in (("Trainer, evaluation rows in split order (before)", "trainer_eval_in_order"),
                      ("Trainer, evaluation rows by length (after)", "trainer")):
        r = result[key]
        print(f"| {name} | {r['median_s']:.3f} | {r['eval_save_s']:.1f} | {r['at_preset_cadence_s']:.3f} | "
              f"{r['median_padded_length']:.0f} | {r['ratio_steady']:.2f} | {r['ratio_at_preset_cadence']:.2f} |")


if __name__ == "__main__":
    main()
