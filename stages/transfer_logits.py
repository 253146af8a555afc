"""transfer_logits: the teacher's raw logits on the transfer set (data/transfer), keyed by id, computed once.

A separate stage from teacher_logits, so that changing only data.transfer re-scores only the transfer rows.
Writes data/transfer_logits/transfer.parquet and summary.json (rows, the teacher's agreement with the
labels the rows had in their source, where there were any).
"""
import time
from pathlib import Path

import numpy as np

from distillery.cli import run_stage
from distillery.errors import DistilleryError
from distillery.distributed import is_main
from distillery.models.inference import split_logits_across_processes
from distillery.io import atomic_dir, write_logits
from distillery.logits_top_k import check_top_k
from distillery.params import load_params
from distillery.data.prepared import load_prepared
from distillery.training.teacher import TeacherPaths, load_teacher_and_tokenizer
from distillery.data.transfer import GENERATED_LOGITS, GENERATED_SEQUENCES, LOGITS_FILE, SUMMARY_FILE, TRANSFER_DIR, \
    TRANSFER_LOGITS, agreement, load_transfer
from distillery.io import write_json


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    transfer = load_transfer(TRANSFER_DIR)
    summary = {"rows": len(transfer), "origins": transfer.meta["counts"]}
    top_k = params["teacher"]["logits_top_k"]
    if prepared.is_lm:  # language models: the teacher's generated sequences are their transfer set
        return generated_transfer(params, prepared)
    check_top_k(top_k, prepared.num_labels)
    if len(transfer):
        teacher, tokenizer = load_teacher_and_tokenizer(TeacherPaths(None).model)
        classes = teacher.config.num_labels
        if classes != prepared.num_labels:
            raise DistilleryError(f"data.transfer: the teacher has {classes} output classes but the data has "
                                  f"{prepared.num_labels} labels {prepared.label_names}: its soft targets do not fit "
                                  "the student (teacher.checkpoint?)")
        start = time.perf_counter()
        logits = split_logits_across_processes(teacher, tokenizer, transfer.as_split(),
                                               params["teacher"]["inference_batch_size"], "transfer",
                                               "teacher-transfer")
        seconds = time.perf_counter() - start
        if not is_main():  # several processes (compute.processes): the main one holds every row and writes
            return
        summary.update(agreement(logits, transfer))
        print(f"transfer: {len(transfer)} rows in {seconds:.1f} s; teacher agreement with the source labels "
              f"{summary['agreement']} on {summary['labelled_rows']} rows")
    else:
        logits = np.zeros((0, prepared.num_labels), np.float32)
        if not is_main():
            return
    with atomic_dir(TRANSFER_LOGITS) as out:
        write_logits(out / LOGITS_FILE, transfer.ids, logits, top_k)
        write_json(out / SUMMARY_FILE, summary)


def generated_transfer(params: dict, prepared) -> None:
    """task causal_lm: the teacher continues teacher.generate.sequences training prompts (their first
    teacher.generate.prompt_tokens, or with data.prompt_column their prompts; sampled, seeded) and scores its own
    sequences once per token (sequence-level KD's data, kd.method seqkd); only the summary when off."""
    generate = params["teacher"]["generate"]
    summary = {"rows": 0}
    if generate["sequences"]:
        from distillery.data.corpus import write_sequences
        from distillery.data.prepared import prompt_lengths, target_starts, token_arrays
        from distillery.models.causal_lm import sample_continuations, token_logits_batches
        from distillery.token_logits import token_logits_writer
        from distillery.training.causal_lm import load_lm_teacher, prepared_tokenizer

        tokenizer, teacher = prepared_tokenizer(), load_lm_teacher()
        train = prepared.splits["train"]
        batch_size = params["teacher"]["inference_batch_size"]
        start = time.perf_counter()
        prompted = prepared.has_prompts  # the teacher answers each row's prompt
        ids, tokens, offsets, prompts = sample_continuations(
            teacher, *token_arrays(train), train.ids, generate, prepared.meta["max_length"], tokenizer.eos_token_id,
            batch_size, prompt_lengths=prompt_lengths(train) if prompted else None)
        prompts = prompts if prompted else None
        sampled = time.perf_counter() - start
        lengths = np.diff(offsets)
        summary = {"rows": len(ids), "tokens": int(lengths.sum()),
                   "mean_length": round(float(lengths.mean()), 3) if len(ids) else 0.0,
                   "ended": int(sum(tokens[end - 1] == tokenizer.eos_token_id for end in offsets[1:]))}
        print(f"generated: {len(ids)} sequences of {summary['mean_length']:.1f} tokens on average in {sampled:.1f} s "
              f"({summary['ended']} ended with the end-of-text token); scored once below")
    with atomic_dir(TRANSFER_LOGITS) as out:
        if generate["sequences"]:
            write_sequences(out / GENERATED_SEQUENCES, ids, tokens, offsets, prompts)
            top_k = params["teacher"]["logits_top_k"]
            with token_logits_writer(out / GENERATED_LOGITS, teacher.config.vocab_size, top_k) as writer:
                for batch in token_logits_batches(teacher, tokens, offsets, ids, top_k, tokenizer.eos_token_id,
                                                  batch_size, "teacher-generated",
                                                  starts=None if prompts is None else target_starts(prompts)):
                    writer.write(*batch)
        write_json(out / SUMMARY_FILE, summary)


if __name__ == "__main__":
    run_stage(main, record=Path("data/transfer_logits"))
