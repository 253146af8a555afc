"""Which libraries' code paths change the bits, and whether `reproducible_cpu: avx2` makes two CPUs agree: small
training runs (a digits MLP, a two-conv CNN, a tiny BERT) and an int8 MLP, each in a fresh process, on this CPU
and on simulated others (each library capped through its own environment variable, as a CPU without those
instructions would have it), unpinned and pinned.

Run: `python bench/cpu_paths.py`. Prints a table of weight hashes (same hash = same bits) and int8 agreement with
fp32, and whether the pinned weights are the bits of the last recorded run (run it on another vendor's CPU: the
vendor check for each model); raw results: bench/results/cpu_paths.json.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench/results/cpu_paths.json"
sys.path.insert(0, str(REPO))
from distillery.numerics import LEVELS  # noqa: E402

AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell"}
SSE_CPU = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
           "OPENBLAS_CORETYPE": "Prescott"}
RUNS = {
    "this CPU, native": {},
    "this CPU, pinned avx2": LEVELS["avx2"],
    "an AVX2 CPU, native": AVX2_CPU,
    "an AVX2 CPU, pinned avx2": {**AVX2_CPU, **LEVELS["avx2"]},
    "a CPU without AVX2, native": SSE_CPU,
}

PROBE = r'''
import copy, hashlib, json, torch
torch.set_num_threads(1)
def digest(model):
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:12]
def train(model, batches, steps):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps):
        loss = batches(step)
        opt.zero_grad(); loss.backward(); opt.step()
    return digest(model)
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
g = torch.Generator().manual_seed(0)
torch.manual_seed(0)
mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
def mlp_batch(step):
    i = torch.randint(0, len(X), (64,), generator=g)
    return torch.nn.functional.cross_entropy(mlp(X[i]), y[i])
out = {"mlp": train(mlp, mlp_batch, 300)}
torch.manual_seed(0)
cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                          torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                          torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 10))
out["cnn"] = train(cnn, lambda s: torch.nn.functional.cross_entropy(
    cnn(torch.randn(64, 1, 28, 28, generator=g)), torch.randint(0, 10, (64,), generator=g)), 20)
from transformers import BertConfig, BertForSequenceClassification
torch.manual_seed(0)
bert = BertForSequenceClassification(BertConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                                                intermediate_size=512, vocab_size=1000))
out["bert"] = train(bert, lambda s: bert(input_ids=torch.randint(0, 1000, (8, 32), generator=g),
                                         labels=torch.randint(0, 2, (8,), generator=g)).loss, 5)
import torchao.quantization as Q
torch.manual_seed(0)
fp32 = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).eval()
x = torch.randn(256, 64, generator=g)
for name, reduce_range in (("int8_8bit", False), ("int8_7bit", True)):
    q = copy.deepcopy(fp32)
    Q.quantize_(q, Q.Int8DynamicActivationInt8WeightConfig(reduce_range=reduce_range))
    with torch.no_grad():
        a, b = fp32(x), q(x)
    out[name] = {"agreement": (a.argmax(1) == b.argmax(1)).float().mean().item(), "hash": hashlib.sha256(
        b.numpy().tobytes()).hexdigest()[:12]}
out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
print(json.dumps(out))
'''


PINNED = "this CPU, pinned avx2"


def cpu_model() -> str:
    """The CPU's model name as Linux lists it, or the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def against_last_run(last: dict | None, now: dict) -> str:
    """Whether the pinned weights here are the bits of the last recorded run (another CPU's, where it was one)."""
    if not last or PINNED not in last.get("runs", {}):
        return "no earlier run recorded to compare the pinned weights with"
    before, here = last["runs"][PINNED], now["runs"][PINNED]
    verdicts = ", ".join(f"{model.upper()} {'same' if before[model] == here[model] else 'DIFFERENT'}"
                         for model in ("mlp", "cnn", "bert"))
    return (f"pinned avx2 here ({now['cpu']}) against the last recorded run ({last['date']}, "
            f"{last.get('cpu', 'CPU not recorded')}): {verdicts}")


def main() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in {*AVX2_CPU, *SSE_CPU, "MKL_CBWR"}}
    last = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "python bench/cpu_paths.py",
              "cpu": cpu_model(), "runs": {}}
    for name, env in RUNS.items():
        done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                              check=True)
        result["runs"][name] = {"environment": env, **json.loads(done.stdout.strip().splitlines()[-1])}
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| run | torch kernels | MLP | CNN | BERT | int8 agreement, 8-bit activations | int8, 7-bit |")
    print("|---|---|---|---|---|---|---|")
    for name, r in result["runs"].items():
        print(f"| {name} | {r['torch_cpu_capability']} | {r['mlp']} | {r['cnn']} | {r['bert']} | "
              f"{r['int8_8bit']['agreement']:.3f} ({r['int8_8bit']['hash']}) | "
              f"{r['int8_7bit']['agreement']:.3f} ({r['int8_7bit']['hash']}) |")
    print(against_last_run(last, result))
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
