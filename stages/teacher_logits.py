"""teacher_logits: the teacher's raw logits for every split, keyed by id, computed once (examples/s measured, into
reports/timings/teacher_logits.json: git-ignored, as timings differ run to run); only the top k per row and the
rest's mass with teacher.logits_top_k.

``--name NAME`` scores ``teachers.NAME`` instead, into ``data/teachers/NAME``.
"""
import argparse
import time
from pathlib import Path

from distillery.cli import run_stage
from distillery.distributed import is_main
from distillery.models.inference import split_logits_across_processes
from distillery.io import TIMINGS_ROOT, atomic_dir, write_json, write_logits
from distillery.logits_top_k import check_top_k
from distillery.params import load_params
from distillery.data.prepared import SPLITS, load_prepared
from distillery.training.teacher import TeacherPaths, load_teacher_and_tokenizer, teacher_block


def main(name: str | None) -> None:
    params = load_params()
    block = teacher_block(params, name)
    batch_size, top_k = block["inference_batch_size"], block["logits_top_k"]
    prepared = load_prepared(Path("data/prepared"))
    if prepared.is_lm:
        return token_logits(prepared, batch_size, top_k)
    check_top_k(top_k, prepared.num_labels, f"{'teacher' if name is None else f'teachers.{name}'}.logits_top_k")
    paths = TeacherPaths(name)
    teacher, tokenizer = load_teacher_and_tokenizer(paths.model)
    throughput, logits, seconds = {}, {}, {}
    for split_name in SPLITS:  # several processes (compute.processes): each scores a share of the rows
        split = prepared.splits[split_name]
        start = time.perf_counter()
        logits[split_name] = split_logits_across_processes(teacher, tokenizer, split, batch_size, split_name,
                                                           f"teacher-{split_name}")
        seconds[split_name] = time.perf_counter() - start
        throughput[split_name] = {"examples": len(split.ids), "seconds": round(seconds[split_name], 3),
                                  "examples_per_s": round(len(split.ids) / seconds[split_name], 1)}
    if not is_main():  # the main process holds every row and writes the one file per split
        return
    with atomic_dir(paths.logits) as out:
        for split_name, split_logits in logits.items():
            split = prepared.splits[split_name]
            write_logits(out / f"{split_name}.parquet", split.ids, split_logits, top_k)
            print(f"{split_name}: {len(split.ids)} rows in {seconds[split_name]:.1f} s "
                  f"({len(split.ids) / seconds[split_name]:,.0f} "
                  f"examples/s), teacher accuracy {(split_logits.argmax(1) == split.labels).mean():.4f}")
    if name is None:
        write_json(TIMINGS_ROOT / "teacher_logits.json", throughput)


def token_logits(prepared, batch_size: int, top_k: int | None) -> None:
    """Language models: the teacher's logits at every token with a next token (with prompts, from the prompt's last
    token on: the response's targets), keyed by (id, position), written batch by batch (a split's logits are never
    all in memory)."""
    from distillery.models.causal_lm import token_logits_batches
    from distillery.token_logits import check_token_top_k, token_logits_writer
    from distillery.data.prepared import prompt_lengths, target_starts, token_arrays
    from distillery.training.causal_lm import load_lm_teacher, prepared_tokenizer

    tokenizer, teacher = prepared_tokenizer(), load_lm_teacher()
    vocab_size = teacher.config.vocab_size
    check_token_top_k(top_k, vocab_size)
    pad = tokenizer.pad_token_id  # prepare gives every corpus tokenizer one (its end-of-text token if it has none)
    throughput = {}
    with atomic_dir(TeacherPaths().logits) as out:
        for split_name in SPLITS:
            split = prepared.splits[split_name]
            start = time.perf_counter()
            with token_logits_writer(out / f"{split_name}.parquet", vocab_size, top_k) as writer:
                for batch in token_logits_batches(teacher, *token_arrays(split), split.ids, top_k, pad, batch_size,
                                                  f"teacher-{split_name}", starts=target_starts(prompt_lengths(split))):
                    writer.write(*batch)
            seconds = time.perf_counter() - start
            stored = writer.stored
            throughput[split_name] = {"tokens": stored.num_tokens, "seconds": round(seconds, 3),
                                      "tokens_per_s": round(stored.num_tokens / seconds, 1)}
            print(f"{split_name}: {stored.num_tokens} tokens of {len(split.ids)} sequences scored and written in "
                  f"{seconds:.1f} s, {stored.bytes_per_token} bytes per token stored (+ {stored.key_bytes} of key)")
    write_json(TIMINGS_ROOT / "teacher_logits.json", throughput)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="one of the teachers under `teachers` in params.yaml")
    args = parser.parse_args()
    run_stage(lambda: main(args.name), record=TeacherPaths(args.name).logits)
