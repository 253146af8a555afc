"""teacher: train the teacher on train (early stopping on validation), or record teacher.checkpoint.

``--name NAME`` builds ``teachers.NAME`` instead (one DVC stage per extra teacher, for multi_teacher).
"""
import argparse
from pathlib import Path

from distillery.cli import run_stage
from distillery.params import load_params
from distillery.data.prepared import load_prepared
from distillery.training.teacher import TeacherPaths, build_teacher


def main(name: str | None) -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    paths = TeacherPaths(name)
    if prepared.is_lm:
        from distillery.training.causal_lm import build_lm_teacher

        build_lm_teacher(params, params["teacher"], prepared, paths.model, paths.curves)
    else:
        build_teacher(params, prepared, paths.model, live_dir=paths.curves, name=name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="one of the teachers under `teachers` in params.yaml")
    args = parser.parse_args()
    run_stage(lambda: main(args.name), record=TeacherPaths(args.name).curves,
              reads="teacher" if args.name is None else f"teachers.{args.name}")
