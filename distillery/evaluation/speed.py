"""Latency and throughput of the teacher and a student, timed side by side in one process."""
from __future__ import annotations

import platform
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from ..models.inference import best_device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


MIN_TIMED_ROUNDS = 3


def timing_rounds(warmup: int, repeats: int, budget_s: float):
    """The rounds of a timing, in order: False for a warm-up round, True for a timed one; ``warmup`` then
    ``repeats`` rounds, cut short when ``budget_s`` seconds are spent: the warm-up after its first round once half
    the budget is gone, the timed rounds once all of it is and at least ``MIN_TIMED_ROUNDS`` (or ``repeats``, if
    fewer) have run."""
    start = time.perf_counter()
    warm = timed = 0
    while timed < repeats:
        spent = time.perf_counter() - start
        if warm < warmup and not (warm and spent > budget_s / 2):
            warm += 1
            yield False
        elif timed >= min(MIN_TIMED_ROUNDS, repeats) and spent > budget_s:
            return
        else:
            warm = warmup
            timed += 1
            yield True


def timed_forward(model, batch: dict, device: torch.device) -> float:
    """Seconds for one forward pass of ``batch`` (the model's keyword inputs), waiting for the device to finish."""
    synchronize(device)
    start = time.perf_counter()
    model(**batch)
    synchronize(device)
    return time.perf_counter() - start


def array_batches(inputs: np.ndarray, batch_size: int, device: torch.device) -> dict:
    """The latency (first row) and throughput (first ``batch_size`` rows, repeated if fewer) batches."""
    rows = np.resize(inputs, (max(batch_size, 1), *inputs.shape[1:]))  # repeats rows if the split is smaller
    return {
        "latency": {"features": torch.from_numpy(np.ascontiguousarray(rows[:1])).to(device)},
        "throughput": {"features": torch.from_numpy(np.ascontiguousarray(rows[:batch_size])).to(device)},
    }


def text_batches(tokenizer, split, batch_size: int, device: torch.device) -> dict:
    """As ``array_batches`` for text: the split's first rows in the model's own tokenization, padded."""
    n = len(split.ids)
    rows = [i % n for i in range(max(batch_size, 1))]
    columns = [list(split.dataset[c]) for c in ("text", "text_pair") if c in split.dataset.column_names]

    def encode(index):
        batch = tokenizer(*[[col[i] for i in index] for col in columns], truncation=True, padding=True,
                          max_length=tokenizer.model_max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    return {"latency": encode(rows[:1]), "throughput": encode(rows[:batch_size])}


def measure_speed(models: dict, inputs, batch_size: int, repeats: int, warmup: int, tokenizers: dict | None = None,
                  device: torch.device | None = None, budget_s: float = float("inf")) -> dict:
    """Median latency at batch size 1 and median throughput at ``batch_size`` for each of ``models``.

    ``inputs``: an array, or a prepared text split tokenized with each model's tokenizer from ``tokenizers``.
    After ``warmup`` untimed passes, the models take turns in each of ``repeats`` rounds, so slow phases
    of a shared machine hit all of them alike; ratios of these medians are what to compare. The rounds stop
    early once ``budget_s`` is spent (``timing_rounds``); ``repeats`` in the result is the count timed.
    ``device``: default ``best_device()``.
    """
    device = device or best_device()
    if tokenizers:
        batches = {name: text_batches(tokenizers[name], inputs, batch_size, device) for name in models}
    else:
        batches = {name: array_batches(inputs, batch_size, device) for name in models}
    models = {name: m.to(device).eval() for name, m in models.items()}
    times = {(name, what): [] for name in models for what in ("latency", "throughput")}
    timed = 0
    with torch.inference_mode():
        for is_timed in tqdm(timing_rounds(warmup, repeats, budget_s), desc="timing", total=warmup + repeats,
                             leave=False):
            for name, model in models.items():
                for what, batch in batches[name].items():
                    seconds = timed_forward(model, batch, device)
                    if is_timed:
                        times[name, what].append(seconds)
            timed += is_timed
    out = {
        "device": device_name(device),
        "batch_size": batch_size,
        "repeats": timed,
    }
    for name in models:
        out[name] = {
            "latency_ms": float(np.median(times[name, "latency"]) * 1e3),
            "throughput_per_s": float(batch_size / np.median(times[name, "throughput"])),
        }
    return out


def speedups(speed: dict, reference: str = "teacher", other: str = "student") -> dict:
    """How many times faster ``other`` is than ``reference``: latency ratio and throughput ratio."""
    return {
        "speedup_latency": speed[reference]["latency_ms"] / speed[other]["latency_ms"],
        "speedup_throughput": speed[other]["throughput_per_s"] / speed[reference]["throughput_per_s"],
    }


def int8_speed(student, inputs, batch_size: int, repeats: int, warmup: int, tokenizer=None,
               budget_s: float = float("inf")) -> dict:
    """``measure_speed`` of ``student`` in fp32 (``student``) and with int8 Linear layers (``student_int8``,
    ``distillery.evaluation.quantization``), taking turns on CPU, where dynamic int8 quantization runs; with the ratios
    ``speedup_latency`` / ``speedup_throughput`` of int8 over fp32 (below 1: int8 is slower)."""
    from .quantization import quantize_int8

    pair = {"student": student, "student_int8": quantize_int8(student)}
    tokenizers = {name: tokenizer for name in pair} if tokenizer is not None else None
    speed = measure_speed(pair, inputs, batch_size, repeats, warmup, tokenizers, torch.device("cpu"), budget_s)
    return {**speed, **speedups(speed, "student", "student_int8")}
