"""evaluate: teacher, KD and hard students on test -> reports/metrics.json and per-example predictions."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data import load_prepared
from distillery.evaluation import evaluate
from distillery.io import atomic_dir, write_json, write_text
from distillery.params import load_params
from distillery.report import metrics_table


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    students = {"kd": Path("models/students/kd"), "hard": Path("models/students/hard")}
    metrics, predictions, reliability = evaluate(params, prepared, Path("models/teacher"), students)
    with atomic_dir(Path("reports/eval")) as out:
        predictions.to_csv(out / "predictions.csv", index=False)
        for name, table in reliability.items():
            table.to_csv(out / f"reliability_{name}.csv", index=False, float_format="%.6g")
    write_json(Path("reports/metrics.json"), metrics)
    print(metrics_table(metrics))


if __name__ == "__main__":
    run_stage(main)
