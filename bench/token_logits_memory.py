"""Peak memory of a language model's stored per-token logits with every logit (`teacher.logits_top_k: null`):
writing a split as the teacher_logits stage does now (batch by batch, `token_logits_writer`) against the way it did
before (every batch's logits gathered, joined and put in key order, then written with the base revision's
`write_token_logits`), and loading the file for training
(`load_token_logits`) with this tree's code and with a base revision's. Each in its own process, on synthetic
logits (rows of 5 to 40 tokens, batches of similar length, ids in a shuffled order); the figure is the peak
resident memory above what the process held before the work, as a multiple of the logits' size.

Run: `python bench/token_logits_memory.py [--tokens 250000] [--vocab 2048] [--base REV]`
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from pipeline_time import REPO, copy_revision, head_commit, python_in

RESULTS = REPO / "bench" / "results" / "token_logits_memory.json"

CHILD = r'''
import json, resource, sys
from pathlib import Path
import numpy as np
import torch
from distillery import token_logits as T
import pyarrow.parquet  # imported before the work: its own memory is not the logits'

task, path, tokens, vocab = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
lengths = rng.integers(5, 41, size=tokens // 21)
ids = rng.permutation(len(lengths)).astype(np.int64) * 3 + 1  # the split's rows: ids in a shuffled order
order = np.argsort(lengths, kind="stable")
batches = [order[i:i + 64] for i in range(0, len(order), 64)]  # rows of similar length, as the teacher scores them

def scored(b, rows):
    targets = lengths[rows] - 1
    logits = np.random.default_rng(b).standard_normal((int(targets.sum()), vocab), dtype=np.float32)
    positions = np.concatenate([np.arange(n) for n in targets]).astype(np.int32)
    return np.repeat(ids[rows], targets), positions, T.compress_tokens(torch.from_numpy(logits), None)

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

start = peak()
if task == "write-stream":
    with T.token_logits_writer(path, vocab, None) as writer:
        for b, rows in enumerate(batches):
            writer.write(*scored(b, rows))
elif task == "write-in-memory":
    done = [scored(b, rows) for b, rows in enumerate(batches)]
    key_ids, positions = np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])
    logits = np.concatenate([d[2]["logits"] for d in done])
    del done
    ranked = np.lexsort((positions, key_ids))
    T.write_token_logits(path, key_ids[ranked], positions[ranked], {"logits": logits[ranked]}, vocab_size=vocab)
else:
    data = T.load_token_logits(path, ids, lengths, vocab)
print(json.dumps({"before": start, "peak": peak(), "logits_bytes": int((lengths - 1).sum()) * vocab * 4}))
'''


def child(task: str, path: Path, tokens: int, vocab: int, code: Path) -> dict:
    start = time.perf_counter()
    row = python_in(code, CHILD, task, path, tokens, vocab)
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["above_logits"] = round((row["peak"] - row["before"]) / row["logits_bytes"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=250_000)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--base", default="e1ecf24", help="the revision whose loader to compare (before streaming)")
    args = parser.parse_args()
    commit = head_commit()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = copy_revision(args.base, tmp / "base")
        rows = {
            "write, batch by batch (now)": child("write-stream", tmp / "stream.parquet", args.tokens, args.vocab, REPO),
            f"write, gathered first ({args.base})": child("write-in-memory", tmp / "memory.parquet", args.tokens,
                                                            args.vocab, base),
            "load (now)": child("load", tmp / "stream.parquet", args.tokens, args.vocab, REPO),
            f"load ({args.base})": child("load", tmp / "stream.parquet", args.tokens, args.vocab, base),
        }
    result = {"commit": commit, "base": args.base, "cpus": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "vocab": args.vocab, "rows": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    logits = next(iter(rows.values()))["logits_bytes"]
    print(f"{os.cpu_count()} CPUs, commit {result['commit']}; {logits / 2**30:.2f} GiB of logits "
          f"(vocabulary {args.vocab}, every logit)")
    print("| work | peak memory above the start (GiB) | × the logits | s |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {(row['peak'] - row['before']) / 2**30:.2f} | {row['above_logits']:.2f} | {row['seconds']} |")


if __name__ == "__main__":
    main()
