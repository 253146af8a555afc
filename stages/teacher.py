"""teacher: train the teacher on train (early stopping on validation), or record teacher.checkpoint."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.prepared import load_prepared
from distillery.params import load_params
from distillery.teacher import build_teacher


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    build_teacher(params, prepared, Path("models/teacher"), live_dir=Path("reports/training/teacher"))


if __name__ == "__main__":
    run_stage(main)
