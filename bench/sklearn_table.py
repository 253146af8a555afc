"""Your own table, end to end: a table scikit-learn ships, saved as a CSV and run through `dvc repro`.

`wine`: 178 wines, 13 measurements on scales from about 0.1 (hue) to 1,680 (proline), 3 cultivars;
`breast_cancer`: 569 tumours, 30 measurements from about 0.001 to 4,254 (worst area), 2 classes. In a
fresh copy of the repo the script writes `<table>.csv` (the label in column `class`), sets the params of
docs/data.md's "your own table" example (all else default), runs the whole pipeline and prints the metrics
table and the evaluate stage's warning, if any. `--scaling none` shows what unscaled features do.

Run: `python bench/sklearn_table.py [--table wine|breast_cancer] [--scaling auto|standard|minmax|none]`
(about two minutes on two cores)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import ENV, fresh_copy  # noqa: E402

def main() -> None:
    from sklearn import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="wine", choices=["wine", "breast_cancer"])
    parser.add_argument("--scaling", default="auto", choices=["auto", "standard", "minmax", "none"])
    args = parser.parse_args()
    with fresh_copy() as work:
        bunch = getattr(datasets, f"load_{args.table}")(as_frame=True)
        bunch.data.assign(**{"class": bunch.target}).to_csv(work / f"{args.table}.csv", index=False)
        params = yaml.safe_load((work / "params.yaml").read_text())
        params["data"].update(source=f"file:{args.table}.csv", feature_columns="all", label_column="class",
                              scaling=args.scaling)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {**ENV, "PYTHONPATH": str(work)}
        repro = subprocess.run(["dvc", "repro"], cwd=work, env=env, check=True, capture_output=True, text=True)
        table = subprocess.run([sys.executable, "-m", "distillery.evaluation.report", "reports/metrics.json"], cwd=work,
                               env=env, check=True, capture_output=True, text=True).stdout
        setting = [line for line in (work / "reports/report.md").read_text().splitlines()
                   if line.startswith(("| data |", "| feature scaling |"))]
    print(f"{args.table}.csv, data.scaling: {args.scaling}")
    print("\n".join(setting))
    print(table)
    print("\n".join(line for line in repro.stdout.splitlines() if line.startswith("WARNING:")))


if __name__ == "__main__":
    main()
