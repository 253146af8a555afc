"""Latency and throughput of the teacher and a student, timed side by side in one process."""
from __future__ import annotations

import platform
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from .inference import best_device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _timed_forward(model, batch: torch.Tensor, device: torch.device) -> float:
    """Seconds for one forward pass of ``batch``, waiting for the device to finish."""
    _synchronize(device)
    start = time.perf_counter()
    model(features=batch)
    _synchronize(device)
    return time.perf_counter() - start


def measure_speed(models: dict, inputs: np.ndarray, batch_size: int, repeats: int, warmup: int) -> dict:
    """Median latency at batch size 1 and median throughput at ``batch_size`` for each of ``models``.

    After ``warmup`` untimed passes, the models take turns in each of ``repeats`` rounds, so slow phases
    of a shared machine hit all of them alike; ratios of these medians are what to compare.
    """
    device = best_device()
    rows = np.resize(inputs, (max(batch_size, 1), *inputs.shape[1:]))  # repeats rows if the split is smaller
    batches = {
        "latency": torch.from_numpy(np.ascontiguousarray(rows[:1])).to(device),
        "throughput": torch.from_numpy(np.ascontiguousarray(rows[:batch_size])).to(device),
    }
    models = {name: m.to(device).eval() for name, m in models.items()}
    times = {(name, what): [] for name in models for what in batches}
    with torch.inference_mode():
        for round_ in tqdm(range(warmup + repeats), desc="timing", leave=False):
            for name, model in models.items():
                for what, batch in batches.items():
                    seconds = _timed_forward(model, batch, device)
                    if round_ >= warmup:
                        times[name, what].append(seconds)
    out = {
        "device": device_name(device),
        "batch_size": batch_size,
        "repeats": repeats,
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
