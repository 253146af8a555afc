"""hard_baseline: the same students (architecture, seeds, data order, steps) on hard labels only."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.methods.base import HARD
from distillery.params import load_params
from distillery.data.prepared import load_prepared
from distillery.training.students import train_students


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    if prepared.is_lm:
        from distillery.training.causal_lm import train_lm_students

        train_lm_students(HARD, params, prepared, Path("models/students/hard"), live_root=Path("reports/training/hard"),
                          keep_runs=True)
        return
    train_students(HARD, params, prepared, Path("models/students/hard"), live_root=Path("reports/training/hard"),
                   keep_runs=True)


if __name__ == "__main__":
    run_stage(main, record=Path("reports/training/hard"), reads="student")
