"""Teacher inference on SST-2 train with the `sst2-minilm` teacher (MiniLM-L6): what the teacher_logits stage does
(`distillery.models.tokenization.tokenize` + `distillery.models.inference.predict_text_logits`: rows sorted by length, batches of
`teacher.inference_batch_size` padded to their longest row) vs the loop common in notebooks (rows in order, batches of
16, every row padded to 128 tokens, `torch.no_grad`). Both include tokenizing (the stage's cache starts empty).

The teacher is the preset's architecture with a fresh head (fine-tuning changes no speed); a fixed random subset of
`--rows` sentences (SST-2 train has 67,349). `cpu_threads` as the preset (2). Writes bench/results/teacher_throughput.json.

Run: `python bench/teacher_throughput.py [--rows 2000]`
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sst2_data
from distillery.models.inference import predict_text_logits
from distillery.training.runs import seeded
from distillery.models.text import build_text_model
from distillery.models.tokenization import tokenize

RESULTS = Path(__file__).resolve().parent / "results" / "teacher_throughput.json"


def notebook_loop(model, tokenizer, texts: list[str], batch_size: int = 16, length: int = 128) -> np.ndarray:
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding="max_length", max_length=length,
                              truncation=True, return_tensors="pt")
            out.append(model(**batch).logits.numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    params = sst2_data.preset()
    torch.set_flush_denormal(True)
    torch.set_num_threads(params["cpu_threads"])
    seeded(0)
    model, tokenizer = build_text_model(params["teacher"]["model"], sst2_data.LABELS, "teacher.model")
    data = sst2_data.sentences(args.rows)
    batch_size = params["teacher"]["inference_batch_size"]
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        tokenized = tokenize(data, tokenizer, "bench-teacher", Path(cache))
        ours = predict_text_logits(model, tokenizer, tokenized, batch_size)
        grouped = time.perf_counter() - start
    start = time.perf_counter()
    theirs = notebook_loop(model, tokenizer, list(data["text"]))
    notebook = time.perf_counter() - start
    lengths = np.array([len(ids) for ids in tokenized["input_ids"]])
    short = lengths < params["teacher"]["model"]["max_length"]  # the rows neither path truncates
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "torch": torch.__version__,
              "rows": args.rows, "threads": torch.get_num_threads(), "median_tokens": float(np.median(lengths)),
              "grouped": {"batch_size": batch_size, "seconds": round(grouped, 2), "rows_per_s": round(args.rows / grouped, 1)},
              "notebook": {"batch_size": 16, "padded_to": 128, "seconds": round(notebook, 2),
                           "rows_per_s": round(args.rows / notebook, 1)},
              "speedup": round(notebook / grouped, 2),
              "max_abs_logit_diff_untruncated_rows": float(np.abs(ours[short] - theirs[short]).max())}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.rows} random "
          f"SST-2 train sentences (median {result['median_tokens']:.0f} tokens), MiniLM-L6 teacher")
    print("| path | rows/s | s | speed-up |\n|---|---|---|---|")
    print(f"| notebook loop (in order, batch 16, padded to 128) | {result['notebook']['rows_per_s']:.0f} | "
          f"{notebook:.1f} | 1.00 |")
    print(f"| teacher_logits (length-grouped, batch {batch_size}, tokenizing included) | "
          f"{result['grouped']['rows_per_s']:.0f} | {grouped:.1f} | {result['speedup']:.2f} |")


if __name__ == "__main__":
    main()
