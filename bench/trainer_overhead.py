"""Per-step cost of the Hugging Face `Trainer` against a plain PyTorch loop, on a digits student.

Same model (MLP 64-<hidden>-10; the default 16 is the default student, `--hidden 800 800` Hinton's), data (all of
digits, resident on the device for both: batches are index slices there), batch size, optimiser (fused AdamW, as
`train_model`; the default constant lr), number of steps and KD loss (`distillery.methods.kd`); no evaluation or
checkpoints in either. Side by side in one process, interleaved and repeated, so the ratio is what to read on a
noisy machine. Beside the times, the torch (ATen) operations each loop runs per step, counted in untimed runs: on a GPU most launch
a kernel, so their difference is what the `Trainer` adds on the device; the rest of its extra time is Python.
`--compile` adds the `Trainer` with `train.compile: true` (torch.compile of the student), timed after one
untimed run that compiles (its time is printed).

Run: `python bench/trainer_overhead.py [--steps 1500] [--hidden 800 800] [--device cuda] [--compile]`
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils._python_dispatch import TorchDispatchMode

from distillery.methods import get_method
from distillery.methods.kd import kd_terms
from distillery.models.inference import best_device
from distillery.models.zoo import build_model
from distillery.params import validate
from distillery.training.trainer import TensorDictDataset, train_model

LABELS = [str(i) for i in range(10)]


def data(device: torch.device) -> TensorDictDataset:
    digits = load_digits()
    x = torch.from_numpy((digits.data / 16.0).astype(np.float32)).reshape(-1, 8, 8)
    y = torch.from_numpy(digits.target.astype(np.int64))
    teacher = torch.randn(len(y), 10, generator=torch.Generator().manual_seed(0))
    return TensorDictDataset(features=x, labels=y, teacher_logits=teacher).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(dataset: TensorDictDataset, spec: dict, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model(spec, [8, 8], LABELS).to(dataset.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0, fused=True)  # as train_model
    loader = torch.utils.data.DataLoader(range(len(dataset)), batch_size=batch_size, shuffle=True, drop_last=False)
    synchronize(dataset.device)
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
    synchronize(dataset.device)
    return time.perf_counter() - start


def with_trainer(dataset: TensorDictDataset, spec: dict, steps: int, batch_size: int, compile: bool = False) -> float:
    torch.manual_seed(0)
    model = build_model(spec, [8, 8], LABELS)
    params = validate({})["train"] | {"max_steps": steps, "batch_size": batch_size, "eval_steps": 10 * steps,
                                       "save_steps": 10 * steps, "precision": "fp32", "compile": compile}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_model(model, dataset, dataset, params, seed=0, method=get_method("kd"),
                    hyperparams={"T": 4.0, "alpha": 0.5}, checkpoint_dir=Path(tmp))
        synchronize(dataset.device)
        return time.perf_counter() - start


class OperationCount(TorchDispatchMode):
    """Counts the ATen operations run inside it, by name (forward, backward and the optimizer's)."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def operations_per_step(loop: Callable[[int], object], steps: tuple[int, int] = (100, 200)) -> dict[str, float]:
    """ATen operations per step of ``loop(n)``, by name: the counts of the longer run less those of the shorter
    (what a run does once, set-up and the end, cancels out), over the difference in steps; operations whose count
    does not grow with the steps are left out."""
    counts = []
    for n in steps:
        with OperationCount() as counter:
            loop(n)
        counts.append(counter.counts)
    return {name: (counts[1][name] - counts[0][name]) / (steps[1] - steps[0])
            for name in counts[0] | counts[1] if counts[1][name] != counts[0][name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[16], help="the student's hidden layer sizes")
    parser.add_argument("--device", default=None, help="default: CUDA if present, else CPU")
    parser.add_argument("--compile", action="store_true", help="also time the Trainer with train.compile: true")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    device = torch.device(args.device) if args.device else best_device()
    spec = {"arch": "mlp", "hidden_sizes": args.hidden, "dropout": 0.0}
    dataset = data(device)
    plain_loop(dataset, spec, 50, args.batch_size)  # warm-up
    with_trainer(dataset, spec, 50, args.batch_size)
    if args.compile:
        try:
            compiling = with_trainer(dataset, spec, 50, args.batch_size, compile=True)
            print(f"first compiled run (50 steps, compiling included): {compiling:.1f} s", flush=True)
        except Exception as error:  # e.g. no C compiler for Inductor: the other rows still come
            print(f"train.compile failed, its row left out: {type(error).__name__}: {error}", flush=True)
            args.compile = False
    loops = [("plain PyTorch loop", lambda steps: plain_loop(dataset, spec, steps, args.batch_size)),
             ("`Trainer` (`distillery.training.trainer.train_model`, no eval/checkpoints)",
              lambda steps: with_trainer(dataset, spec, steps, args.batch_size))]
    try:
        operations = [f"{sum(operations_per_step(run).values()):.1f}" for _, run in loops]
    except Exception as error:  # the times still come
        print(f"counting operations failed, their column left empty: {type(error).__name__}: {error}", flush=True)
        operations = ["", ""]
    if args.compile:  # a compiled model's operations are fused by Inductor: not counted
        loops.append(("`Trainer`, `train.compile: true`",
                      lambda steps: with_trainer(dataset, spec, steps, args.batch_size, compile=True)))
        operations.append("")
    runs = []
    for repeat in range(args.repeats):  # interleaved: all see the same load
        runs.append([run(args.steps) for _, run in loops])
        print(f"run {repeat + 1}: " + ", ".join(f"{seconds:.2f} s" for seconds in runs[-1]), flush=True)
    medians = [statistics.median(times) for times in zip(*runs)]
    ms = lambda seconds: 1000 * seconds / args.steps  # noqa: E731
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"{name}, torch {torch.__version__}; MLP 64-{'-'.join(map(str, args.hidden))}-10, {args.steps} steps, "
          f"batch {args.batch_size}; median of {args.repeats} interleaved runs")
    print("| loop | ms/step | ratio | ATen operations/step |\n|---|---|---|---|")
    for (label, _), seconds, count in zip(loops, medians, operations):
        print(f"| {label} | {ms(seconds):.2f} | {seconds / medians[0]:.2f} | {count} |")


if __name__ == "__main__":
    main()
