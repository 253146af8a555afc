"""Evaluating language models (``task: causal_lm``): the teacher, the distilled and the hard students on the
validation and test sequences, token by token.

Every model reads the same padded batches; per token (positions with a next token) each student's NLL, whether its
argmax is the next token, whether it agrees with the teacher's argmax and KL(teacher ‖ student) are kept
(``lm_metrics.score_tokens``), so perplexity is token-weighted and the KD-vs-hard difference is a paired bootstrap
over sequences (seeds pooled). Also: how the teacher judges each model's own samples of test prompts, tokens per
second and latency per generated token of each model, and greedy continuations of a few fixed validation prompts.

A split is ``(tokens, offsets, prompt_lengths)`` (``data.prepared.token_arrays`` and ``prompt_lengths``). With a
corpus of prompts and responses (``data.prompt_column``) the tokens scored are the responses', the models sample
and answer each row's own prompt, and each model's greedy answers to the test prompts are scored against the
reference responses (``responses``: ROUGE-L F1 and exact match, KD − hard with a paired bootstrap over prompts).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import lm_metrics as L
from .speed import synchronize, timed_forward, timing_rounds

SPLIT_PREFIX = {"validation": "validation_", "test": ""}  # as the classifiers' metrics: test unprefixed
MODEL_METRICS = ("nll", "perplexity", "next_token_accuracy", "teacher_agreement", "kl_from_teacher")
PROMPTS, PROMPT_TOKENS, NEW_TOKENS = 3, 8, 24  # greedy continuations in the report (at most: generation_lengths)


def score_split(models: dict, split_tokens: tuple[np.ndarray, np.ndarray], pad_id: int, batch_size: int,
                device: torch.device) -> tuple[dict, np.ndarray]:
    """Per-token scores of every model (name -> ``score_tokens`` dict; the teacher is ``teacher`` and the others are
    compared with it) and each token's sequence (row position)."""
    from ..data.prepared import target_counts, target_starts
    from ..models.causal_lm import has_next, padded, padded_batches

    tokens, offsets, prompts = split_tokens
    starts = target_starts(prompts)
    tokens_t = torch.from_numpy(np.asarray(tokens, np.int64))
    vocab = models["teacher"].config.vocab_size
    parts: dict[str, list[dict]] = {name: [] for name in models}
    sequence = []
    with torch.inference_mode():
        for rows in padded_batches(offsets, batch_size, max(1, 2 ** 26 // vocab)):
            input_ids, mask = padded(tokens_t, offsets, rows, pad_id)
            lengths = offsets[rows + 1] - offsets[rows]
            targets = has_next(offsets, rows, input_ids.shape[1], starts)
            following = torch.roll(input_ids, -1, dims=1)[targets].to(device)
            targets = targets.to(device)
            inputs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
            teacher = models["teacher"](**inputs).logits.float()[targets]
            parts["teacher"].append(L.score_tokens(teacher, following))
            for name, model in models.items():
                if name != "teacher":
                    logits = model(**inputs).logits.float()[targets]
                    parts[name].append(L.score_tokens(logits, following, teacher))
            sequence.append(np.repeat(rows, target_counts(lengths, prompts[rows])))
    joined = {name: {key: np.concatenate([p[key] for p in batches]) for key in batches[0]}
              for name, batches in parts.items()}
    return joined, np.concatenate(sequence)


def evaluate_lm(teacher, students: dict[str, dict[int, object]], splits: dict[str, tuple], pad_id: int,
                batch_size: int, bootstrap_samples: int, bootstrap_seed: int, device: torch.device,
                samples: dict | None = None, answers: dict | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """``metrics.json`` for a language-model run: per model and split the token-weighted NLL, perplexity, next-token
    accuracy (and for students agreement with the teacher and KL(teacher ‖ student)), students as the mean and std
    over seeds; ``comparison``: KD − hard in NLL per token with its paired bootstrap interval, the perplexity ratio
    and the fraction of the hard student's perplexity gap to the teacher KD closes, on validation and test. Also, per
    split, each sequence's tokens and summed NLL under every model (row order of the split). ``samples``
    (``judged_samples``' arguments after the models and the test split: ``eos_id``, ``prompts``, ``max_length``,
    ``seed``) adds the teacher's judgement of each model's own samples of test prompts; ``answers`` (``responses``'
    arguments after the models and the test split: ``tokenizer``, ``prompts``, ``max_length``, optionally
    ``end_of_turn``), for a corpus of prompts and responses, each model's ROUGE-L F1 and exact match against the
    test references and KD − hard in both with a paired bootstrap over prompts (seeds pooled)."""
    models = {"teacher": teacher.to(device).eval()}
    for kind, seeds in students.items():
        for seed, model in seeds.items():
            models[f"{kind}_seed{seed}"] = model.to(device).eval()
    metrics: dict = {"teacher": {}, **{kind: {} for kind in students}, "comparison": {}}
    per_seed: dict[str, dict[str, dict]] = {kind: {} for kind in students}
    tables = {}
    for split_name, split_tokens in splits.items():
        prefix = SPLIT_PREFIX[split_name]
        scores, sequence = score_split(models, split_tokens, pad_id, batch_size, device)
        n_sequences = len(split_tokens[1]) - 1
        for name, score in scores.items():
            values = {k: v for k, v in L.lm_metrics(score).items() if k in MODEL_METRICS}
            if name == "teacher":
                metrics["teacher"].update({prefix + k: v for k, v in values.items()})
                metrics["teacher"][prefix + "tokens"] = int(len(score["nll"]))
            else:
                kind, seed = name.rsplit("_seed", 1)
                per_seed[kind].setdefault(seed, {}).update({prefix + k: v for k, v in values.items()})
        tokens = L.sequence_sums(np.ones(len(sequence)), sequence, n_sequences)
        tables[split_name] = pd.DataFrame({"tokens": tokens.astype(np.int64), **{
            name: L.sequence_sums(score["nll"], sequence, n_sequences) for name, score in scores.items()}})
        sums = {kind: np.stack([L.sequence_sums(scores[f"{kind}_seed{s}"]["nll"], sequence, n_sequences)
                                for s in seeds]) for kind, seeds in students.items()}
        if {"kd", "hard"} <= set(students):
            bootstrap = L.paired_nll_bootstrap(sums["kd"], sums["hard"], tokens, bootstrap_samples, bootstrap_seed)
            metrics["comparison"].update({prefix + f"kd_minus_hard_nll{suffix}": bootstrap[key] for key, suffix in
                                          (("difference", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))})
            metrics["comparison"][prefix + "kd_over_hard_perplexity"] = bootstrap["perplexity_ratio"]
    if samples and samples["prompts"]:
        judged = judged_samples(models, splits["test"], pad_id, samples["eos_id"], samples["prompts"],
                                samples["max_length"], batch_size, samples["seed"], device)
        for name, values in judged.items():
            if name == "teacher":
                metrics["teacher"].update(values)
            else:
                kind, seed = name.rsplit("_seed", 1)
                per_seed[kind][seed].update(values)
    if answers and answers["prompts"] and splits["test"][2].any():
        scores = task_scores(responses(models, splits["test"], answers["tokenizer"], answers["prompts"],
                                       answers["max_length"], batch_size, device, answers.get("end_of_turn", "")))
        for name, values in scores.items():
            if name == "teacher":
                metrics["teacher"].update({key: float(v.mean()) for key, v in values.items()})
            else:
                kind, seed = name.rsplit("_seed", 1)
                per_seed[kind][seed].update({key: float(v.mean()) for key, v in values.items()})
        if {"kd", "hard"} <= set(students):
            from .metrics import paired_bootstrap_ci

            for key in TASK_METRICS:
                paired = [np.stack([scores[f"{kind}_seed{s}"][key] for s in students[kind]]) for kind in ("kd", "hard")]
                interval = paired_bootstrap_ci(*paired, bootstrap_samples, bootstrap_seed)
                metrics["comparison"].update({f"kd_minus_hard_{key}{suffix}": interval[part] for part, suffix in
                                              (("difference", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))})
            metrics["comparison"]["responses"] = len(next(iter(scores.values()))["rouge_l"])
    for kind, seeds in per_seed.items():
        table = {key: [row[key] for row in seeds.values()] for key in next(iter(seeds.values()))}
        for key, values in table.items():
            metrics[kind][key] = float(np.mean(values))
            metrics[kind][f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            if key.endswith("perplexity"):
                metrics[kind][f"{key}_seeds"] = [float(v) for v in values]
        metrics[kind]["seeds"] = len(seeds)
    if {"kd", "hard"} <= set(students):
        for prefix in SPLIT_PREFIX.values():
            metrics["comparison"][prefix + "gap_closure"] = L.gap_closure(
                metrics["teacher"][prefix + "perplexity"], metrics["kd"][prefix + "perplexity"],
                metrics["hard"][prefix + "perplexity"])
        metrics["comparison"]["bootstrap_samples"] = bootstrap_samples
    for name, model in (("teacher", teacher), *((kind, next(iter(seeds.values()))) for kind, seeds in
                                                students.items())):
        metrics[name]["params"] = sum(p.numel() for p in model.parameters())
    return metrics, tables


def judged_samples(models: dict, split_tokens: tuple[np.ndarray, np.ndarray], pad_id: int, eos_id: int, prompts: int,
                   max_length: int, batch_size: int, seed: int, device: torch.device) -> dict[str, dict]:
    """How the teacher judges each model's own text (what on-policy distillation optimises): every model samples a
    continuation (temperature 1, up to ``prompt_rows``' tokens, cut after the end-of-text token) of the same
    prompts (``prompt_rows``: the first tokens of the first ``prompts`` sequences that have more, or the first
    ``prompts`` rows' own prompts), and the teacher (``models["teacher"]``) scores
    the sampled tokens. Per model: ``teacher_nll_of_samples`` (per sampled token), its ``teacher_perplexity_of_samples``
    and ``sampled_tokens_per_sequence``; for the teacher itself this is its own entropy rate, the floor a student
    that samples as the teacher does reaches. A student can also lower it by sampling few, generic continuations:
    ``model_perplexity_of_samples`` (the model's own perplexity of its samples, an estimate of its entropy rate)
    and ``distinct_bigrams_of_samples`` (the distinct pairs of consecutive sampled tokens over all pairs, Dist-2 of
    Li et al. 2016, on tokens) say how varied the samples are. Each model samples from ``seed`` (torch's generator,
    restored after)."""
    from ..data.prepared import UNLABELLED
    from ..models.causal_lm import continue_prompts, padded

    tokens, offsets, _ = split_tokens
    rows, lengths, new_tokens = prompt_rows(split_tokens, prompts, max_length)
    if len(rows) == 0:
        return {}
    tokens_t = torch.from_numpy(np.asarray(tokens, np.int64))
    teacher = models["teacher"]
    batches = list(same_prompt_batches(rows, lengths, batch_size))
    generator_state = torch.random.get_rng_state()
    out = {}
    try:
        for name, model in models.items():
            torch.manual_seed(seed)
            nll, own_nll, count, bigrams, distinct = 0.0, 0.0, 0, 0, set()
            for chunk, length in batches:
                input_ids, mask = padded(tokens_t, offsets, chunk, pad_id)
                with torch.inference_mode():
                    batch = continue_prompts(model, input_ids.to(device), mask.to(device), length, new_tokens,
                                             1.0, eos_id, pad_id, max_length=max_length)
                    keep = batch["labels"] != UNLABELLED
                    by_teacher = sampled_nll(teacher, batch, keep)
                    nll += by_teacher
                    own_nll += by_teacher if model is teacher else sampled_nll(model, batch, keep)
                count += int(keep.sum())
                for labels, kept in zip(batch["labels"].tolist(), keep.tolist()):
                    sampled = [token for token, is_sampled in zip(labels, kept) if is_sampled]
                    pairs = list(zip(sampled, sampled[1:]))
                    bigrams += len(pairs)
                    distinct.update(pairs)
            out[name] = {"teacher_nll_of_samples": nll / count,
                         "teacher_perplexity_of_samples": float(np.exp(nll / count)),
                         "model_perplexity_of_samples": float(np.exp(own_nll / count)),
                         "distinct_bigrams_of_samples": len(distinct) / max(bigrams, 1),
                         "sampled_tokens_per_sequence": count / len(rows)}
    finally:
        torch.random.set_rng_state(generator_state)
    return out


def sampled_nll(scorer, batch: dict, keep: torch.Tensor) -> float:
    """``scorer``'s summed NLL of a batch's sampled tokens (``keep``: where the labels are)."""
    logits = scorer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return float(torch.nn.functional.cross_entropy(logits[keep].float(), batch["labels"][keep], reduction="sum"))


def prompt_rows(split_tokens: tuple, prompts: int, max_length: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows whose prompts the models continue, each one's prompt length and the most tokens to generate: of a
    plain corpus, the first ``prompts`` sequences longer than ``generation_lengths``' prompt, its first tokens;
    of a corpus of prompts and responses, the first ``prompts`` rows and their own prompts, answered up to
    ``max_length``."""
    _, offsets, prompt_lengths = split_tokens
    if prompt_lengths.any():
        rows = np.arange(min(prompts, len(prompt_lengths)))
        return rows, prompt_lengths[rows], max_length
    prompt_tokens, new_tokens = generation_lengths(max_length)
    rows = np.flatnonzero(np.diff(offsets) > prompt_tokens)[:prompts]
    return rows, np.full(len(rows), prompt_tokens), new_tokens


def generation_lengths(max_length: int) -> tuple[int, int]:
    """Prompt and continuation tokens for a run of ``max_length``-token sequences: what the models were trained on."""
    prompt = min(PROMPT_TOKENS, max_length // 2)
    return prompt, min(NEW_TOKENS, max_length - prompt)


def continuations(models: dict, tokenizer, split_tokens: tuple, max_length: int, device: torch.device,
                  prompts: int = PROMPTS, end_of_turn: str = "") -> list[dict]:
    """Greedy continuations for every model of the first ``prompts`` of ``prompt_rows``: deterministic, the same
    prompts in every run. A plain corpus's few first tokens are continued for ``generation_lengths``' tokens; a
    prompt is answered up to the end-of-text token (``responses``, cut at a chat template's ``end_of_turn``)."""
    tokens, offsets, prompt_lengths = split_tokens
    if prompt_lengths.any():
        answers = responses(models, split_tokens, tokenizer, prompts, max_length, prompts, device, end_of_turn)
        rows = np.arange(min(prompts, len(prompt_lengths)))
        return [{"prompt": tokenizer.decode(tokens[offsets[row]:offsets[row] + prompt_lengths[row]]),
                 "reference": answers["reference"][i], **{name: answers[name][i] for name in models}}
                for i, row in enumerate(rows)]
    rows, lengths, new_tokens = prompt_rows(split_tokens, prompts, max_length)
    out = []
    for row, prompt_tokens in zip(rows, lengths.tolist()):
        prompt = torch.as_tensor(tokens[offsets[row]:offsets[row] + prompt_tokens], dtype=torch.long)[None]
        entry = {"prompt": tokenizer.decode(prompt[0]),
                 "reference": tokenizer.decode(tokens[offsets[row] + prompt_tokens:offsets[row + 1]])}
        for name, model in models.items():
            generated = generate(model, prompt.to(device), new_tokens, tokenizer)
            entry[name] = tokenizer.decode(generated[0, prompt_tokens:], skip_special_tokens=False)
        out.append(entry)
    return out


def responses(models: dict, split_tokens: tuple, tokenizer, prompts: int, max_length: int, batch_size: int,
              device: torch.device, end_of_turn: str = "") -> dict[str, list[str]]:
    """Each model's greedy answer to the first ``prompts`` prompts of a split of prompts and responses, up to its
    end-of-text token or ``max_length`` tokens in all, as text (special tokens dropped, and the chat template's
    ``end_of_turn`` and what follows it); ``reference``: the responses the split holds (as prepared: cut at
    ``data.max_length``; empty for rows of a prompt alone), the same way."""
    from ..data.chats import cut_at_end_of_turn
    from ..data.prepared import UNLABELLED
    from ..models.causal_lm import continue_prompts, padded

    tokens, offsets, prompt_lengths = split_tokens
    rows = np.arange(min(prompts, len(prompt_lengths)))
    tokens_t = torch.from_numpy(np.asarray(tokens, np.int64))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    def text(ids) -> str:
        return cut_at_end_of_turn(tokenizer.decode(ids, skip_special_tokens=True), end_of_turn)

    out = {"reference": [text(tokens[offsets[row] + prompt_lengths[row]:offsets[row + 1]]) for row in rows]}
    for name, model in models.items():
        texts = {}
        with tqdm(total=len(rows), desc=f"answers of {name}", unit="prompt", leave=False,
                  disable=len(rows) <= batch_size) as progress:
            for chunk, length in same_prompt_batches(rows, prompt_lengths[rows], batch_size):
                input_ids, mask = padded(tokens_t, offsets, chunk, pad)
                lengths = torch.full((len(chunk),), length)  # each row's prompt, whatever follows it
                with torch.inference_mode():
                    batch = continue_prompts(model, input_ids.to(device), mask.to(device), lengths, max_length, None,
                                             eos, pad, max_length=max_length)
                for row, labels in zip(chunk.tolist(), batch["labels"].cpu().numpy()):
                    texts[row] = text(labels[labels != UNLABELLED])
                progress.update(len(chunk))
        out[name] = [texts[row] for row in rows.tolist()]
    return out


def same_prompt_batches(rows: np.ndarray, lengths: np.ndarray, batch_size: int):
    """``rows`` (their prompts ``lengths`` long) in batches of at most ``batch_size`` whose prompts are equally long
    (shortest first, in row order within a length), each with its prompt length: each prompt is answered up to
    ``max_length`` tokens in all whatever the other rows of its batch."""
    for length in np.unique(lengths):
        members = rows[lengths == length]
        for start in range(0, len(members), batch_size):
            yield members[start:start + batch_size], int(length)


TASK_METRICS = ("rouge_l", "exact_match")


def task_scores(answers: dict[str, list[str]]) -> dict[str, dict[str, np.ndarray]]:
    """Per model (``responses``' keys but ``reference``), each answer's ROUGE-L F1 and exact match against its
    reference (``lm_metrics.rouge_l``, ``exact_match``)."""
    references = answers["reference"]
    return {name: {"rouge_l": L.rouge_l(texts, references), "exact_match": L.exact_match(texts, references)}
            for name, texts in answers.items() if name != "reference"}


def generate(model, prompt: torch.Tensor, new_tokens: int, tokenizer) -> torch.Tensor:
    """Greedy decoding, the same ``new_tokens`` for every model (no early stop at the end-of-text token)."""
    with torch.inference_mode():
        return model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)


def lm_speed(models: dict, split_tokens: tuple[np.ndarray, np.ndarray], pad_id: int, batch_size: int, repeats: int,
             warmup: int, tokenizer, max_length: int, device: torch.device, budget_s: float = float("inf")) -> dict:
    """Per model: tokens per second scored in batches (the median of ``repeats`` timed passes over one batch of the
    split's sequences, fewer where the model's share of ``budget_s`` is spent: ``timing_rounds``; the count timed
    in ``repeats``) and the latency per generated token (greedy, one sequence, as in ``generation_lengths``)."""
    from ..models.causal_lm import padded

    tokens, offsets, prompt_lengths = split_tokens
    rows = np.arange(min(batch_size, len(offsets) - 1))
    input_ids, mask = padded(torch.from_numpy(np.asarray(tokens, np.int64)), offsets, rows, pad_id)
    inputs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
    count = int(mask.sum())
    prompt_tokens, new_tokens = generation_lengths(max_length)
    if prompt_lengths[0]:  # the first row's own prompt
        prompt_tokens = int(prompt_lengths[0])
        new_tokens = min(NEW_TOKENS, max_length - prompt_tokens)
    prompt = input_ids[:1, :prompt_tokens].to(device)
    speed = {}
    for name, model in models.items():
        with torch.inference_mode():
            passes = []
            for is_timed in timing_rounds(warmup, repeats, budget_s / len(models)):
                seconds = timed_forward(model, inputs, device)
                if is_timed:
                    passes.append(seconds)
        synchronize(device)
        start = time.perf_counter()
        generate(model, prompt, new_tokens, tokenizer)
        synchronize(device)
        latency = (time.perf_counter() - start) / new_tokens
        speed[name] = {"tokens_per_s": round(count / float(np.median(passes)), 1),
                       "ms_per_generated_token": round(latency * 1000, 3), "repeats": len(passes)}
    return speed
