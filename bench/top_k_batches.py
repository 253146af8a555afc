"""A language model's training batch of stored top-k teacher targets: what the data loader builds on the CPU and
hands to the training device, with this tree's code (the k + 1 numbers a token, `TokenLogits.top_k_parts`, made
dense on the device by `token_logits.dense_targets`) against a base revision's (the dense (B, L, V) targets built on
the CPU). Each in its own process, on synthetic stored logits of full rows (every position a target), the same
batches. The dense targets are also timed where they are now made, in the training step: on the GPU where there is
one, and on the CPU (a run on a CPU makes them there, as its loader did before).

The bytes a batch carries to the device are computed from its tensors, whatever the machine.

Run: `python bench/top_k_batches.py [--batch 32] [--length 256] [--vocab 49152] [--top-k 20] [--base REV]`
(the defaults: `smollm2-tinystories`' shape)
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from pipeline_time import REPO, copy_revision, head_commit, python_in

RESULTS = REPO / "bench" / "results" / "top_k_batches.json"

CHILD = r'''
import json, statistics, sys, time
import numpy as np
import torch
from distillery import token_logits as T

batch, length, vocab, k, repeats = (int(a) for a in sys.argv[1:6])
rows = 8 * batch
rng = np.random.default_rng(0)
tokens = rows * (length - 1)
distinct = np.stack([rng.choice(vocab, k, replace=False) for _ in range(256)]).astype(np.int32)
index = distinct[rng.integers(0, 256, tokens)]
top = -np.sort(-rng.normal(size=(tokens, k)).astype(np.float32), axis=1) + 5
parts = {"index": index, "top": top, "rest_mean": rng.normal(size=tokens).astype(np.float32),
         "rest_lse": (top[:, 0] + 3).astype(np.float32)}
stored = T.TokenLogits(np.arange(rows), np.full(rows, length), vocab, parts)
times = []
for r in range(repeats):
    chosen = rng.choice(rows, batch, replace=False).tolist()
    start = time.perf_counter()
    out = stored.batch(chosen, length, 2.0)
    times.append(time.perf_counter() - start)
pieces = out.values() if isinstance(out, dict) else [out]
row = {"loader_ms": round(1000 * statistics.median(times), 2),
       "bytes_to_device": sum(t.numel() * t.element_size() for t in pieces)}
if isinstance(out, dict) and torch.cuda.is_available():
    device = {name: t.cuda() for name, t in out.items()}
    T.dense_targets(device, vocab); torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        T.dense_targets(device, vocab)
    torch.cuda.synchronize()
    row["dense_on_gpu_ms"] = round(1000 * (time.perf_counter() - start) / repeats, 3)
if isinstance(out, dict):  # training on a CPU: the step makes them dense there
    start = time.perf_counter()
    for _ in range(repeats):
        T.dense_targets(out, vocab)
    row["dense_on_cpu_ms"] = round(1000 * (time.perf_counter() - start) / repeats, 2)
print(json.dumps(row))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base", default="0f6414c", help="the revision that built dense targets on the CPU")
    args = parser.parse_args()
    commit = head_commit()
    with tempfile.TemporaryDirectory() as tmp:
        base = copy_revision(args.base, Path(tmp) / "base")
        shape = (args.batch, args.length, args.vocab, args.top_k, args.repeats)
        rows = {f"dense on the CPU ({args.base})": python_in(base, CHILD, *shape),
                "top-k parts (now)": python_in(REPO, CHILD, *shape)}
    result = {"commit": commit, "base": args.base, "cpus": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "shape": {"batch": args.batch, "length": args.length, "vocab": args.vocab, "top_k": args.top_k},
              "rows": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, commit {result['commit']}; batch {args.batch} x {args.length} tokens, "
          f"vocabulary {args.vocab}, top {args.top_k}")
    print("| loader builds | ms a batch (CPU) | MiB a batch to the device | made dense in the step: GPU, CPU ms |\n"
          "|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['loader_ms']} | {row['bytes_to_device'] / 2**20:.1f} | "
              f"{row.get('dense_on_gpu_ms', '—')}, {row.get('dense_on_cpu_ms', '—')} |")


if __name__ == "__main__":
    main()
