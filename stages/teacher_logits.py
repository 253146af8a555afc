"""teacher_logits: the teacher's raw logits for every split, keyed by id, computed once (examples/s measured, into
reports/timings/teacher_logits.json: git-ignored, as timings differ run to run).

``--name NAME`` scores ``teachers.NAME`` instead, into ``data/teachers/NAME``.
"""
import argparse
import time
from pathlib import Path

from distillery.cli import run_stage
from distillery.inference import split_logits
from distillery.io import TIMINGS_ROOT, atomic_dir, write_json, write_logits
from distillery.params import load_params
from distillery.prepared import SPLITS, load_prepared
from distillery.teacher import TeacherPaths, load_teacher_and_tokenizer, teacher_block


def main(name: str | None) -> None:
    params = load_params()
    batch_size = teacher_block(params, name)["inference_batch_size"]
    prepared = load_prepared(Path("data/prepared"))
    paths = TeacherPaths(name)
    teacher, tokenizer = load_teacher_and_tokenizer(paths.model)
    throughput = {}
    with atomic_dir(paths.logits) as out:
        for split_name in SPLITS:
            split = prepared.splits[split_name]
            start = time.perf_counter()
            logits = split_logits(teacher, tokenizer, split, batch_size, split_name, f"teacher-{split_name}")
            seconds = time.perf_counter() - start
            write_logits(out / f"{split_name}.parquet", split.ids, logits)
            throughput[split_name] = {"examples": len(split.ids), "seconds": round(seconds, 3),
                                      "examples_per_s": round(len(split.ids) / seconds, 1)}
            print(f"{split_name}: {len(split.ids)} rows in {seconds:.1f} s ({len(split.ids) / seconds:,.0f} "
                  f"examples/s), teacher accuracy {(logits.argmax(1) == split.labels).mean():.4f}")
    if name is None:
        write_json(TIMINGS_ROOT / "teacher_logits.json", throughput)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="one of the teachers under `teachers` in params.yaml")
    args = parser.parse_args()
    run_stage(lambda: main(args.name))
