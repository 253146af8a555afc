"""DVC's own time with and without the C loader of ruamel.yaml (`ruamel.yaml.clib`, in requirements.txt).

DVC reads dvc.yaml, dvc.lock (about 1,100 lines: every stage's code files with their hashes) and params.yaml with
ruamel.yaml, several times per command; since ruamel.yaml 0.19 its C loader (libyaml) is an optional package, and
without it every read is pure Python. In one fresh copy of the repo after `dvc repro`, the two take turns
(`--repeats` rounds): `dvc status` (median of 5 each round) and the everyday loop `dvc exp run -S kd.T=...` (a new
T each time, so each run re-runs distill, evaluate and plots). "Without" runs DVC in a process where the C loader
cannot be imported, so ruamel.yaml falls back to Python as it does when the package is not installed.
Raw results: bench/results/yaml_loader.json.

Run: `python bench/yaml_loader.py [--repeats 3]`
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import fresh_copy, timed  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results/yaml_loader.json"
DVC = "import sys; from dvc.cli import main; sys.exit(main(sys.argv[1:]))"
WITHOUT = "import sys; sys.modules['_ruamel_yaml'] = None; "  # what ruamel.yaml imports its C loader from
LAYOUTS = {"with the C loader": DVC, "without (pure Python)": WITHOUT + DVC}


def dvc(code: str, args: list[str], work: Path) -> float:
    """Seconds of ``dvc args`` run by ``code`` in ``work``."""
    return timed([sys.executable, "-c", code, *args], work)


def uses_c_loader(code: str) -> bool:
    probe = code.replace(DVC, "from ruamel.yaml import YAML; print(YAML(typ='safe').Parser.__name__)")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "CParser"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds, the layouts taking turns (default 3)")
    args = parser.parse_args()
    loaders = {name: uses_c_loader(code) for name, code in LAYOUTS.items()}
    if loaders != {"with the C loader": True, "without (pure Python)": False}:
        sys.exit(f"the C loader is not as expected ({loaders}): pip install -r requirements.txt")
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/yaml_loader.py", *sys.argv[1:]]),
              "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), load average {os.getloadavg()[0]:.1f} at "
                         "the start", "status": {name: [] for name in LAYOUTS}, "loop": {name: [] for name in LAYOUTS}}
    with fresh_copy() as work:
        dvc(DVC, ["repro"], work)
        T = 4.0
        for _ in range(args.repeats):
            for name, code in LAYOUTS.items():
                result["status"][name].append(statistics.median(dvc(code, ["status"], work) for _ in range(5)))
                T += 1
                result["loop"][name].append(dvc(code, ["exp", "run", "-S", f"kd.T={T}"], work))
                print(f"{name}: dvc status {result['status'][name][-1]:.2f} s, dvc exp run -S kd.T={T} "
                      f"{result['loop'][name][-1]:.1f} s", flush=True)
                RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    result["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['machine']}, python {sys.version.split()[0]}")
    print("| command | with the C loader (s) | without (s) | ratio |\n|---|---|---|---|")
    for key, label in (("status", "`dvc status` (median of 5)"), ("loop", "`dvc exp run -S kd.T=…`")):
        with_c, without = (result[key][name] for name in LAYOUTS)
        runs = " / ".join(f"{a:.2f}" for a in with_c) + " against " + " / ".join(f"{b:.2f}" for b in without)
        a, b = statistics.median(with_c), statistics.median(without)
        print(f"| {label}: {runs}, medians | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    print(f"wrote {RESULTS.relative_to(Path(__file__).resolve().parents[1])}")


if __name__ == "__main__":
    main()
