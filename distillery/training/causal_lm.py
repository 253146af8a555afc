"""Training language models (``task: causal_lm``): the teacher, the distilled and the hard students on the prepared
token sequences, through the same ``Trainer``, method seam and run lifecycle as the classifiers.

A batch holds ``input_ids``, ``attention_mask``, ``labels`` (each position's next token; ``UNLABELLED`` past a
sequence's end and, in a corpus of prompts and responses, over the prompt: only the response is learnt) and, for a
method that reads them, ``teacher_logits``: the teacher's stored per-token logits (``distillery.token_logits``) for
the method's temperature, dense (B, L, V) when every logit is stored, else the top k's parts (a few numbers a
token). The Trainer flattens the target tokens (``trainer.tokens_as_rows``, which
makes top-k targets dense there, on the training device), so every logit method is a mean over tokens.
Checkpoints are selected by the validation NLL per token.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from ..data.checkpoints import save_tokenizer
from ..data.inputs import input_record, save_record
from ..data.prepared import UNLABELLED, Prepared, prompt_lengths, sequence_lengths, target_starts, token_arrays
from ..distributed import is_main
from ..errors import DistilleryError
from ..io import fingerprint
from ..methods import HARD, Method, get_method
from ..models.causal_lm import build_causal_lm, causal_lm_config, check_same_vocabulary, checked_checkpoint_config, \
    has_next, padded
from ..token_logits import TokenLogits, check_token_top_k, load_token_logits
from .runs import CHECKPOINT_ROOT, run_conditions, run_environment, seeded, train_once, weights_fingerprint

METRIC = "nll"  # language models are selected by the validation NLL per token


class TokenSequences(torch.utils.data.Dataset):
    """A split's sequences served as right-padded batches (``__getitems__``: a whole batch at once)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, pad_id: int, targets: TokenLogits | None = None,
                 T: float = 1.0, starts: np.ndarray | None = None):
        self.tokens, self.offsets, self.pad_id = torch.from_numpy(tokens), offsets, pad_id
        self.targets, self.T = targets, T
        self.starts = np.zeros(len(offsets) - 1, np.int64) if starts is None else np.asarray(starts, np.int64)

    @classmethod
    def from_split(cls, split, pad_id: int, targets: TokenLogits | None = None, T: float = 1.0):
        return cls(*token_arrays(split), pad_id, targets, T, target_starts(prompt_lengths(split)))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def __getitems__(self, indices) -> dict:
        rows = np.asarray(indices, np.int64)
        input_ids, mask = padded(self.tokens, self.offsets, rows, self.pad_id)
        targets = has_next(self.offsets, rows, input_ids.shape[1], self.starts)
        batch = {"input_ids": input_ids, "attention_mask": mask,
                 "labels": torch.where(targets, torch.roll(input_ids, -1, dims=1), UNLABELLED)}
        if self.targets is not None:
            batch["teacher_logits"] = self.targets.batch(rows.tolist(), input_ids.shape[1], self.T)
        return batch


def token_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``preprocess_logits_for_metrics``: per sequence of an evaluation batch, the summed NLL of its target tokens,
    how many of them the argmax predicts and how many there are (the (B, L, V) logits are not kept)."""
    keep = labels != UNLABELLED
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="none",
                                            ignore_index=UNLABELLED).view_as(labels)
    correct = (logits.argmax(-1) == labels) & keep
    return torch.stack([nll.sum(1), correct.sum(1).float(), keep.sum(1).float()], dim=1)


def token_metrics(eval_pred) -> dict:
    """The validation NLL per token (the selection metric), its perplexity and the next-token accuracy."""
    nll, correct, tokens = np.asarray(eval_pred.predictions, np.float64).sum(axis=0)
    mean = nll / max(tokens, 1.0)
    return {METRIC: float(mean), "perplexity": float(math.exp(mean)), "accuracy": float(correct / max(tokens, 1.0))}


def lm_train_kwargs(prepared: Prepared, tokenizer, targets: dict | None = None, T: float = 1.0) -> dict:
    """``train_once``'s data and evaluation arguments for a language model (``targets``: split -> TokenLogits)."""
    from .trainer import collate

    targets = targets or {}
    pad = tokenizer.pad_token_id  # prepare gives every corpus tokenizer one (its end-of-text token if it has none)
    return {
        "train_data": TokenSequences.from_split(prepared.splits["train"], pad, targets.get("train"), T),
        "eval_data": TokenSequences.from_split(prepared.splits["validation"], pad, targets.get("validation"), T),
        "data_collator": collate,
        "metric": METRIC,
        "compute_metrics": token_metrics,
        "preprocess_logits_for_metrics": token_sums,
    }


PREPARED, TEACHER = Path("data/prepared"), Path("models/teacher")


def corpus_key(prepared: Prepared) -> list[np.ndarray]:
    """What a training run's fingerprint takes of the corpus: the train and validation tokens and offsets, and
    their prompt lengths where the corpus has prompts (which tokens are targets)."""
    key = []
    for name in ("train", "validation"):
        key.extend(token_arrays(prepared.splits[name]))
        if prepared.has_prompts:
            key.append(prompt_lengths(prepared.splits[name]))
    return key


def prepared_tokenizer(prepared_dir: Path = PREPARED):
    """The tokenizer every model of a language-model run reads (``data.tokenizer``, saved by prepare)."""
    from ..data.corpus import load_tokenizer

    return load_tokenizer(prepared_dir)


def check_student_fits(params: dict, tokenizer, max_length: int, teacher_config) -> None:
    """The student's config against the prepared tokenizer and, for a method that reads the teacher, the teacher's
    vocabulary: refused in the teacher stage, before the teacher trains, not in distill after it."""
    student = causal_lm_config(params["student"]["model"], tokenizer, max_length, "student.model")
    if get_method(params["kd"]["method"]).teacher_needed:
        check_same_vocabulary(student, teacher_config)


def build_lm_teacher(params: dict, block: dict, prepared: Prepared, out_dir: Path, live_dir: Path | None) -> None:
    """Write ``out_dir``: the language-model teacher trained here (early-stopped on the validation NLL), a
    pretrained one used as it is (``finetune: false``), or a reference to ``teacher.checkpoint``; each checked
    against the prepared tokenizer and ``data.max_length`` first."""
    import json

    from ..io import atomic_dir
    from .teacher import REFERENCE_FILE, publish_teacher
    from .trainer import check_precision

    tokenizer, max_length = prepared_tokenizer(), prepared.meta["max_length"]
    if block["checkpoint"]:
        spec = {"pretrained": block["checkpoint"], "config": None}  # checked, not loaded: later stages load it
        config = checked_checkpoint_config(spec, tokenizer, max_length, "teacher.checkpoint", block["trust_remote_code"])
        check_token_top_k(block["logits_top_k"], config.vocab_size)
        check_student_fits(params, tokenizer, max_length, config)
        if is_main():
            with atomic_dir(out_dir) as tmp:
                reference = {"checkpoint": block["checkpoint"], "trust_remote_code": block["trust_remote_code"]}
                (tmp / REFERENCE_FILE).write_text(json.dumps(reference, indent=2) + "\n")
                save_record(input_record(prepared), tmp)
        return
    spec, tp = block["model"], block["train"]
    seeded(block["seed"])
    model = build_causal_lm(spec, tokenizer, max_length, "teacher.model", block["trust_remote_code"])
    check_token_top_k(block["logits_top_k"], model.config.vocab_size)  # refused before training, not after
    check_student_fits(params, tokenizer, max_length, model.config)
    if spec["pretrained"] and not block["finetune"]:
        if is_main():
            with atomic_dir(out_dir) as tmp:
                model.save_pretrained(tmp)
                save_tokenizer(tokenizer, tmp)
                save_record(input_record(prepared), tmp)
        return
    check_precision(tp["precision"], "teacher.train.precision")
    key = fingerprint(block, max_length, run_environment(params), *corpus_key(prepared), live_dir is not None)
    run_dir = CHECKPOINT_ROOT / "teacher" / key
    train = {k: v for k, v in tp.items() if k not in ("early_stopping_patience", "jitter")}
    finished = train_once(run_dir, lambda: model, seed=block["seed"], with_curves=live_dir is not None,
                          tokenizer=tokenizer, train_params=train, early_stopping_patience=tp["early_stopping_patience"],
                          eval_batch_size=tp["batch_size"], **lm_train_kwargs(prepared, tokenizer))
    if is_main():
        publish_teacher(run_dir, finished, out_dir, live_dir, input_record(prepared))


def lm_teacher_source(path: Path = TEACHER) -> tuple[str, bool]:
    """Where the teacher language model of ``models/teacher`` is (the directory, or the checkpoint it refers to)
    and whether it may run remote code."""
    import json

    from .teacher import REFERENCE_FILE

    if not Path(path).exists():
        raise DistilleryError(f"{path}: no teacher (run the teacher stage)")
    reference = Path(path) / REFERENCE_FILE
    if reference.exists():
        info = json.loads(reference.read_text())
        return info["checkpoint"], info["trust_remote_code"]
    return str(path), False


def load_lm_teacher(path: Path = TEACHER):
    from ..models.causal_lm import load_causal_lm

    return load_causal_lm(*lm_teacher_source(path))


def lm_teacher_config(path: Path = TEACHER):
    from transformers import AutoConfig

    from ..models.text import resolve_pretrained

    source, trust = lm_teacher_source(path)
    return AutoConfig.from_pretrained(resolve_pretrained(source), trust_remote_code=trust)


def train_lm_students(method: Method, params: dict, prepared: Prepared, out_dir: Path, live_root: Path | None,
                      logits_dir: Path | None = None, teacher_dir: Path = TEACHER,
                      generated_dir: Path = Path("data/transfer_logits"), keep_runs: bool = False) -> float | None:
    """One student per ``train.seeds`` trained with ``method`` on the prepared sequences (the teacher's stored
    per-token logits joined by (id, position) when the method reads them), saved under ``out_dir/seed_<s>/``;
    returns the summed training time (None in all but the main process). Same seeds, initial weights, data order
    and steps for every method, so the hard student differs from the distilled one by the loss alone. ``keep_runs``:
    as ``students.train_students``'s."""
    from .students import publish_students, target_temperature

    hp = method.hyperparams(params["kd"]) if method is not HARD else {}
    spec, max_length = params["student"]["model"], prepared.meta["max_length"]
    tokenizer = prepared_tokenizer()
    seeded(0)
    probe = build_causal_lm(spec, tokenizer, max_length, "student.model")  # refusals before any training
    run_parts: list = [method.name, hp]
    targets, T, teacher = None, target_temperature(hp), None
    if method.teacher_needed:
        check_same_vocabulary(probe.config, lm_teacher_config(teacher_dir))
    if "live_teacher" in method.needs:  # on-policy: the teacher scores the student's samples at every step
        teacher = load_lm_teacher(teacher_dir).requires_grad_(False)
        run_parts.append(weights_fingerprint(teacher))
    if "student_samples" in method.needs:  # max_new_tokens null: samples up to data.max_length
        if prepared.has_prompts:  # each row's own prompt, the samples cut at data.max_length
            hp = {**hp, "prompt_tokens": None, "max_new_tokens": hp["max_new_tokens"] or max_length,
                  "max_length": max_length}
        else:
            hp = {**hp, "max_new_tokens": hp["max_new_tokens"] or max_length - hp["prompt_tokens"]}
    if "teacher_logits" in method.needs:
        files = {name: Path(logits_dir) / f"{name}.parquet" for name in ("train", "validation")}
        targets = {name: load_token_logits(path, prepared.splits[name].ids, sequence_lengths(prepared.splits[name]),
                                           probe.config.vocab_size,
                                           target_starts(prompt_lengths(prepared.splits[name])))
                   for name, path in files.items()}
        for path in files.values():
            with open(path, "rb") as stored:
                run_parts.append(hashlib.file_digest(stored, "sha256").hexdigest())
    del probe
    data = lm_train_kwargs(prepared, tokenizer, targets, T)
    if "generated" in method.needs:  # sequence-level KD: the teacher's own sequences beside the corpus
        data["train_data"], key = with_generated(data["train_data"], Path(generated_dir), targets["train"].vocab_size)
        run_parts.append(key)
    data_key = corpus_key(prepared)
    with_curves = live_root is not None
    runs: dict[int, list[Path]] = {}
    conditions = run_conditions(params)
    for seed in params["train"]["seeds"]:
        run_id = fingerprint({"model": spec}, conditions, seed, *data_key, with_curves, *run_parts)
        runs[seed] = [CHECKPOINT_ROOT / method.name / run_id]
        train_once(runs[seed][0], lambda: build_causal_lm(spec, tokenizer, max_length, "student.model"), seed=seed,
                   with_curves=with_curves, tokenizer=tokenizer, select=params["train"]["select"],
                   train_params=params["train"], method=method, hyperparams=hp, teacher=teacher,
                   eval_batch_size=params["train"]["batch_size"], **data)
    if not is_main():
        return None
    return publish_students(runs, out_dir, live_root, generations=1, keep_runs=keep_runs,
                            inputs=input_record(prepared))


def with_generated(train: TokenSequences, transfer_dir: Path, vocab_size: int) -> tuple[TokenSequences, str]:
    """The training sequences followed by the teacher's generated ones (``teacher.generate``) with their stored
    per-token logits, and a digest of those files for the run's fingerprint."""
    from ..data.corpus import read_sequences
    from ..data.transfer import GENERATED_LOGITS, GENERATED_SEQUENCES
    from ..token_logits import concat_token_logits

    ids, tokens, offsets, prompts = read_sequences(transfer_dir / GENERATED_SEQUENCES)
    starts = target_starts(prompts)  # with prompts, the teacher's responses alone are targets
    stored = load_token_logits(transfer_dir / GENERATED_LOGITS, ids, np.diff(offsets), vocab_size, starts)
    digest = hashlib.sha256()
    for name in (GENERATED_SEQUENCES, GENERATED_LOGITS):
        with open(transfer_dir / name, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    union = TokenSequences(np.concatenate([train.tokens.numpy(), tokens]),
                           np.concatenate([train.offsets, train.offsets[-1] + offsets[1:]]), train.pad_id,
                           concat_token_logits(train.targets, stored), train.T, np.concatenate([train.starts, starts]))
    return union, digest.hexdigest()
