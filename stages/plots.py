"""plots: PNG figures under reports/plots/ (dvc plots show/diff use the definitions in dvc.yaml)."""
import json
from pathlib import Path

import pandas as pd

from distillery.cli import run_stage
from distillery.params import load_params
from distillery.plots import confusion_matrices, reliability_diagram, training_curves

OUT = Path("reports/plots")


def main() -> None:
    load_params()  # every stage checks all of params.yaml first
    label_names = json.loads(Path("data/prepared/meta.json").read_text())["label_names"]
    predictions = pd.read_csv("reports/eval/predictions.csv")
    reliability = {m: pd.read_csv(f"reports/eval/reliability_{m}.csv") for m in ("teacher", "kd", "hard")}
    OUT.mkdir(parents=True, exist_ok=True)
    confusion_matrices(predictions, label_names, OUT / "confusion.png")
    reliability_diagram(reliability, OUT / "reliability.png")
    training_curves({"kd": Path("reports/training/kd"), "hard": Path("reports/training/hard")}, OUT / "training.png")
    print(f"wrote {sorted(p.name for p in OUT.glob('*.png'))} to {OUT}")


if __name__ == "__main__":
    run_stage(main, uses_torch=False)
