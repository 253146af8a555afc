"""distill: one student per seed, trained on labels + the teacher's logits (joined by id)."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data import load_prepared
from distillery.params import load_params
from distillery.students import load_teacher_logits, train_students


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    logits = load_teacher_logits(Path("data/teacher_logits"), prepared)
    train_students("kd", params, prepared, Path("models/students/kd"), logits, Path("reports/training/kd"))


if __name__ == "__main__":
    run_stage(main)
