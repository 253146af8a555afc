"""Per-step cost of the Hugging Face `Trainer` against a plain PyTorch loop, on the default student.

Same model (MLP 64-16-10), data (all of digits), batch size, optimiser (AdamW, the default constant lr)
and number of steps, both with the KD loss from `distillery.methods.losses`; no evaluation or checkpoints
in either. Side by side in one process, interleaved and repeated, so the ratio is what to read on a noisy machine.

Run: `python bench/trainer_overhead.py [--steps 1500]`
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from distillery.methods import get_method
from distillery.methods.kd import kd_terms
from distillery.models.zoo import build_model
from distillery.params import validate
from distillery.training.trainer import TensorDictDataset, train_model

LABELS = [str(i) for i in range(10)]
SPEC = {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.0}


def data() -> TensorDictDataset:
    digits = load_digits()
    x = torch.from_numpy((digits.data / 16.0).astype(np.float32)).reshape(-1, 8, 8)
    y = torch.from_numpy(digits.target.astype(np.int64))
    teacher = torch.randn(len(y), 10, generator=torch.Generator().manual_seed(0))
    return TensorDictDataset(features=x, labels=y, teacher_logits=teacher)


def plain_loop(dataset: TensorDictDataset, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model(SPEC, [8, 8], LABELS).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    loader = torch.utils.data.DataLoader(range(len(dataset)), batch_size=batch_size, shuffle=True, drop_last=False)
    start, done = time.perf_counter(), 0
    while done < steps:
        for index in loader:
            batch = dataset.__getitems__(index.tolist())
            logits = model(features=batch["features"]).logits
            loss = kd_terms(logits, batch["teacher_logits"], batch["labels"], T=4.0, alpha=0.5).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def with_trainer(dataset: TensorDictDataset, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model(SPEC, [8, 8], LABELS)
    params = validate({})["train"] | {"max_steps": steps, "batch_size": batch_size, "eval_steps": 10 * steps,
                                       "save_steps": 10 * steps, "precision": "fp32"}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_model(model, dataset, dataset, params, seed=0, method=get_method("kd"),
                    hyperparams={"T": 4.0, "alpha": 0.5}, checkpoint_dir=Path(tmp))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    dataset = data()
    plain_loop(dataset, 50, args.batch_size)  # warm-up
    runs = [(plain_loop(dataset, args.steps, args.batch_size), with_trainer(dataset, args.steps, args.batch_size))
            for _ in range(args.repeats)]  # interleaved, so both see the same machine load
    plain, trainer = (statistics.median(times) for times in zip(*runs))
    ms = lambda seconds: 1000 * seconds / args.steps  # noqa: E731
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}; {args.steps} steps, batch {args.batch_size}; "
          f"median of {args.repeats} interleaved runs")
    print("| loop | ms/step | ratio |\n|---|---|---|")
    print(f"| plain PyTorch loop | {ms(plain):.2f} | 1.00 |")
    print(f"| `Trainer` (`distillery.training.trainer.train_model`, no eval/checkpoints) | {ms(trainer):.2f} | {trainer / plain:.2f} |")


if __name__ == "__main__":
    main()
