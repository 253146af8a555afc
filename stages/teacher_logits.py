"""teacher_logits: the teacher's raw logits for every split, keyed by id, computed once."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data import SPLITS, load_prepared
from distillery.inference import predict_logits
from distillery.io import atomic_dir, write_logits
from distillery.params import load_params
from distillery.teacher import load_teacher


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    teacher = load_teacher(Path("models/teacher"))
    with atomic_dir(Path("data/teacher_logits")) as out:
        for name in SPLITS:
            split = prepared.splits[name]
            logits = predict_logits(teacher, split.inputs, params["teacher"]["inference_batch_size"], name)
            write_logits(out / f"{name}.parquet", split.ids, logits)
            print(f"{name}: {len(split.ids)} rows, teacher accuracy {(logits.argmax(1) == split.labels).mean():.4f}")


if __name__ == "__main__":
    run_stage(main)
