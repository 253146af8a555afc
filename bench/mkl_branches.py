"""What MKL's COMPATIBLE branch costs against its AVX2 branch (`reproducible_cpu: avx2` moved from the second to the
first: MKL offers the AVX2 branch on Intel CPUs only, docs/reproducibility.md).

Each branch in a fresh process (MKL reads `MKL_CBWR` once), torch's AVX2 kernels and one thread in both, as in a
pinned stage: SGEMMs of the shapes the default's teacher and a BERT use, and whole training steps (AdamW, batch 32
of 64 tokens) of a BERT student (4 layers of 128) and a MiniLM-sized model (6 layers of 384); plus an md5 of a
few products, which shows the branches give other bits.

Run: `python bench/mkl_branches.py [--repeats 5]`. Raw results: bench/results/mkl_branches.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cpu_numerics import cpu_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mkl_branches.json"
BRANCHES = ("AVX2", "COMPATIBLE")
GEMMS = [(64, 64, 256), (64, 256, 256), (256, 64, 64), (4096, 384, 384), (4096, 384, 1536), (4096, 128, 512)]
MODELS = {"BERT student 4x128": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2,
                                     intermediate_size=512),
          "MiniLM-sized 6x384": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                     intermediate_size=1536)}


def measure(repeats: int) -> dict:
    """This process's timings (run with the branch already in the environment)."""
    import hashlib
    import time

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.set_num_threads(1)
    torch.manual_seed(0)
    found = {"gemm_us": {}, "step_ms": {}}
    digest = hashlib.md5()
    for m, k, n in GEMMS:
        a, b = torch.randn(m, k), torch.randn(k, n)
        digest.update((a @ b).numpy().tobytes())
        reps = max(repeats, int(2e8 / (m * k * n)))
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        found["gemm_us"][f"{m}x{k}x{n}"] = round(1e6 * (time.perf_counter() - start) / reps, 1)
    found["md5"] = digest.hexdigest()
    for name, config in MODELS.items():
        model = BertForSequenceClassification(BertConfig(vocab_size=30522, num_labels=2, **config))
        optimizer = torch.optim.AdamW(model.parameters())
        ids, labels = torch.randint(0, 30522, (32, 64)), torch.randint(0, 2, (32,))

        def step():
            model(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        step()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        found["step_ms"][name] = round(1000 * (time.perf_counter() - start) / repeats, 1)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.repeats)))
        return
    results = {}
    for branch in BRANCHES:
        env = {**os.environ, "MKL_CBWR": branch, "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, __file__, "--measure", "--repeats", str(args.repeats)], env=env,
                             capture_output=True, text=True, check=True).stdout
        results[branch] = json.loads(out.strip().splitlines()[-1])
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/mkl_branches.py", *sys.argv[1:]]),
              "machine": f"{os.cpu_count()} CPUs ({cpu_model()})", **results}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{record['machine']}; md5 of the products: " + ", ".join(f"{b} {results[b]['md5'][:8]}" for b in BRANCHES))
    print("| | MKL_CBWR=AVX2 | MKL_CBWR=COMPATIBLE | ratio |\n|---|---|---|---|")
    for kind, unit in (("gemm_us", "µs"), ("step_ms", "ms")):
        for name, fast in results["AVX2"][kind].items():
            slow = results["COMPATIBLE"][kind][name]
            print(f"| {'SGEMM ' if kind == 'gemm_us' else 'training step, '}{name} | {fast} {unit} | {slow} {unit} | "
                  f"{slow / fast:.2f} |")


if __name__ == "__main__":
    main()
