"""teacher_logits: the teacher's raw logits for every split, keyed by id, computed once (examples/s measured)."""
import time
from pathlib import Path

from distillery.cli import run_stage
from distillery.prepared import SPLITS, load_prepared
from distillery.inference import split_logits
from distillery.io import atomic_dir, write_json, write_logits
from distillery.params import load_params
from distillery.teacher import load_teacher_and_tokenizer


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    teacher, tokenizer = load_teacher_and_tokenizer(Path("models/teacher"))
    throughput = {}
    with atomic_dir(Path("data/teacher_logits")) as out:
        for name in SPLITS:
            split = prepared.splits[name]
            start = time.perf_counter()
            logits = split_logits(teacher, tokenizer, split, params["teacher"]["inference_batch_size"], name,
                                  f"teacher-{name}")
            seconds = time.perf_counter() - start
            write_logits(out / f"{name}.parquet", split.ids, logits)
            throughput[name] = {"examples": len(split.ids), "seconds": round(seconds, 3),
                                "examples_per_s": round(len(split.ids) / seconds, 1)}
            print(f"{name}: {len(split.ids)} rows in {seconds:.1f} s ({len(split.ids) / seconds:,.0f} examples/s), "
                  f"teacher accuracy {(logits.argmax(1) == split.labels).mean():.4f}")
    write_json(Path("reports/teacher_logits.json"), throughput)


if __name__ == "__main__":
    run_stage(main)
