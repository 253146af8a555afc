"""``reports/report.md`` for a language-model run (``task: causal_lm``): the setting, perplexities, the KD-vs-hard
comparison with its interval, the teacher's judgement of each model's samples, the corpus, speed and the models'
greedy continuations side by side."""
from __future__ import annotations

from .wording import budget_caveat, counted, spread_over_seeds

ROWS = (("perplexity", "perplexity", ".3f"), ("nll", "NLL per token", ".4f"),
        ("next_token_accuracy", "next-token accuracy", ".4f"), ("teacher_agreement", "top-1 agreement with teacher",
                                                                ".4f"),
        ("kl_from_teacher", "KL(teacher ‖ student) per token", ".4f"))
SAMPLE_ROWS = (("teacher_perplexity_of_samples", "teacher's perplexity of the model's samples", ".3f"),
               ("teacher_nll_of_samples", "teacher's NLL per sampled token", ".4f"),
               ("model_perplexity_of_samples", "the model's own perplexity of its samples", ".3f"),
               ("distinct_bigrams_of_samples", "distinct token bigrams among its samples' (Dist-2)", ".4f"),
               ("sampled_tokens_per_sequence", "tokens sampled per prompt", ".1f"))
ANSWER_ROWS = (("rouge_l", "ROUGE-L F1", ".4f"), ("exact_match", "exact match", ".4f"))


def _prompt_rows(meta: dict) -> list[str]:
    """The setting table's row on a corpus's prompts (none for plain text)."""
    source = prompt_source(meta)
    if not source:
        return []
    dropped = ", ".join(f"{k} {v:,}" for k, v in meta["long_prompts"].items())
    return [f"| prompts | {source}: the models learn and are scored on the responses alone "
            f"({meta['target_tokens']['train']:,} training target tokens); rows whose prompt fills "
            f"{meta['max_length']} tokens, dropped: {dropped} |"]


def prompt_source(meta: dict) -> str | None:
    """Where a corpus's prompts come from, for the setting table; None for plain text."""
    if meta.get("messages_column"):
        turns = "every assistant message a response" if meta.get("chat_turns") == "every" else \
            "the last message the response"
        source = f"the conversations of column `{meta['messages_column']}` ({turns})"
    elif meta.get("prompt_template"):
        source = f"the template `{_one_line(meta['prompt_template'])}`"
    elif meta.get("prompt_column"):
        source = f"column `{meta['prompt_column']}`"
    else:
        return None
    if meta.get("chat_template"):
        turn = f", its end of turn `{meta['end_of_turn']}` cut from the answers scored" if meta["end_of_turn"] else ""
        source += f", written with a chat template{turn}"
    return source


DROPPED_WARNING = 0.05  # a split losing more than this share of its rows (prompt too long, or empty) is warned about


def lm_teacher_warning(metrics: dict) -> str | None:
    """A warning when the teacher's validation perplexity is not below the hard-label students' mean, else None."""
    teacher = metrics["teacher"].get("validation_perplexity")
    hard = metrics["hard"].get("validation_perplexity")
    if teacher is None or hard is None or teacher < hard:
        return None
    return (f"The teacher is not better than the hard-label students on validation: perplexity {teacher:.3f} against "
            f"their mean {hard:.3f}. A teacher that does not beat the students has nothing to teach them, so the "
            "KD vs hard comparison here says nothing about distillation (and the gap to the teacher is not "
            "computed). Improve the teacher first (its training budget or size).")


def dropped_rows_warning(meta: dict) -> str | None:
    """A warning when prepare dropped more than ``DROPPED_WARNING`` of a split's rows (a prompt that fills
    ``data.max_length``, or an empty row): the scores are of the rest, which may be the easy part."""
    long_prompts, empty = meta.get("long_prompts") or {}, meta.get("empty_rows") or {}
    lost = {split: long_prompts.get(split, 0) + empty.get(split, 0) for split in meta["sizes"]}
    shares = {split: n / (n + meta["sizes"][split]) for split, n in lost.items() if n}
    if not any(share > DROPPED_WARNING for share in shares.values()):
        return None
    listed = ", ".join(f"{split} {lost[split]:,} of {lost[split] + meta['sizes'][split]:,} ({share:.0%})"
                       for split, share in shares.items())
    return (f"prepare dropped rows: {listed}, whose prompt fills `data.max_length` = {meta['max_length']} tokens "
            "or whose text is empty. Every score here is of the rows left, which need not be like the rest: raise "
            "`data.max_length` (or fix the empty rows).")


def cut_tokens_warning(meta: dict) -> str | None:
    """A warning when truncating at ``data.max_length`` cut more than ``DROPPED_WARNING`` of a split's tokens: the
    models learn and are scored on the rows' beginnings only (with prompts: cut responses, and references cut too)."""
    if meta.get("packing") != "truncate":
        return None
    cut, kept = meta.get("tokens_cut") or {}, meta.get("tokens") or {}
    shares = {split: n / (n + kept[split]) for split, n in cut.items() if n and split in kept}
    if not any(share > DROPPED_WARNING for share in shares.values()):
        return None
    listed = ", ".join(f"{split} {cut[split]:,} of {cut[split] + kept[split]:,} tokens ({share:.0%})"
                       for split, share in shares.items())
    answers = (" The test answers are scored against references cut the same way." if prompt_source(meta) else "")
    return (f"`data.max_length` = {meta['max_length']} cut {listed}: the models learn and are scored on the rows' "
            f"beginnings only.{answers} Raise `data.max_length` (at most the models' positions)"
            + ("." if prompt_source(meta) else ", or pack the rows (`data.packing: pack`)."))


def _gap(value: float | None) -> str:
    return "— (the teacher is no better than the hard student)" if value is None else f"{value:.2f}"


def _repeated(meta: dict) -> str:
    """The validation and test rows whose prompt (plain text: text) train also holds word for word, in words."""
    what = "prompt" if "prompts_also_in_train" in meta else "text"
    repeated = meta.get("prompts_also_in_train") or meta.get("texts_also_in_train") or {}
    return "".join(f"; {n:,} of the {meta['sizes'][split]:,} {split} rows repeat a train row's {what} word for word"
                   for split, n in repeated.items() if n)


def _cell(block: dict, key: str, fmt: str) -> str:
    if key not in block:
        return "—"
    std = block.get(f"{key}_std")
    return f"{block[key]:{fmt}}" + (f" ± {std:{fmt}}" if std is not None and block.get("seeds", 1) > 1 else "")


def lm_setting_table(params: dict, meta: dict, metrics: dict, selections: dict[str, list[dict]]) -> str:
    """The report's setting: corpus, tokenizer, sequences, prompts, parameters, seeds and checkpoints."""
    train = params["train"]
    return "\n".join([
        "| | |", "|---|---|",
        f"| corpus | {meta['sizes']['train']:,} / {meta['sizes']['validation']:,} / {meta['sizes']['test']:,} "
        f"sequences (train / validation / test), {meta['tokens']['train']:,} training tokens{_repeated(meta)} |",
        f"| tokenizer | {meta['tokenizer']}, {meta['vocab_size']:,} tokens |",
        f"| sequences | {meta['packing']} at {meta['max_length']} tokens; tokens cut: "
        + ", ".join(f"{k} {v:,}" for k, v in meta["tokens_cut"].items()) + " |",
        *_prompt_rows(meta),
        f"| parameters | teacher {metrics['teacher']['params']:,}, student {metrics['kd']['params']:,} |",
        f"| seeds | {', '.join(map(str, train['seeds']))} |",
        f"| checkpoints | {_selection_text(train, selections)} |"])


def render_lm_report(params: dict, meta: dict, metrics: dict, continuations: list[dict], pngs: list[str],
                     selections: dict[str, list[dict]], method_text: str, speed: dict | None = None) -> str:
    """The report as Markdown (deterministic for the same inputs; timings only when ``speed`` is given)."""
    train, comparison = params["train"], metrics["comparison"]
    seeds = len(train["seeds"])
    warnings = filter(None, [dropped_rows_warning(meta), cut_tokens_warning(meta), lm_teacher_warning(metrics)])
    lines = ["# Distillation report: language model", "",
             *(line for warning in warnings for line in (f"> **Warning.** {warning}", "")),
             f"Teacher → student on `{meta['source']}`: {method_text}; the hard student is the same model trained on "
             f"the next tokens only (same seeds, data order and {train['max_steps']:,} steps).", "",
             "## Setting", "", lm_setting_table(params, meta, metrics, selections), "",
             "## Results", "",
             f"Students: {spread_over_seeds(seeds)}; validation chose every checkpoint, test was never used "
             "for a choice.", "",
             "| metric | split | teacher | distilled | hard |", "|---|---|---|---|---|"]
    for prefix, split in (("validation_", "validation"), ("", "test")):
        for key, words, fmt in ROWS:
            row = [_cell(metrics[name], prefix + key, fmt) for name in ("teacher", "kd", "hard")]
            lines.append(f"| {words} | {split} | " + " | ".join(row) + " |")
    if "teacher_nll_of_samples" in metrics["teacher"]:
        lines += ["", "Each model's own text as the teacher judges it (what on-policy distillation optimises): every "
                  "model samples a continuation of the same test prompts at temperature 1, and the teacher scores the "
                  "sampled tokens (the teacher's own row: its entropy rate, the floor for a student that samples as "
                  "it does; a lower figure than it means text the teacher finds more predictable than its own, e.g. "
                  "repetition).", "", "| metric | teacher | distilled | hard |", "|---|---|---|---|"]
        for key, words, fmt in SAMPLE_ROWS:
            lines.append(f"| {words} | " + " | ".join(_cell(metrics[name], key, fmt)
                                                     for name in ("teacher", "kd", "hard")) + " |")
    if "rouge_l" in metrics["teacher"]:
        lines += ["", f"Each model's greedy answers to the first {comparison['responses']:,} test prompts, scored "
                  "against the reference responses (ROUGE-L F1 on stemmed words, as the GKD and MiniLLM papers "
                  "score; exact match after lower-casing and joining whitespace).", "",
                  "| metric | teacher | distilled | hard |", "|---|---|---|---|"]
        for key, words, fmt in ANSWER_ROWS:
            lines.append(f"| {words} | " + " | ".join(_cell(metrics[name], key, fmt)
                                                     for name in ("teacher", "kd", "hard")) + " |")
        lines += ["", "KD − hard on the answers (positive: the distilled student is better), paired bootstrap over "
                  f"prompts with the {counted(seeds, 'seed')} pooled:", ""]
        lines += [f"- {words}: {comparison['kd_minus_hard_' + key]:+.4f} (95 % "
                  f"interval {comparison['kd_minus_hard_' + key + '_ci_low']:+.4f} to "
                  f"{comparison['kd_minus_hard_' + key + '_ci_high']:+.4f})" for key, words, _ in ANSWER_ROWS]
    lines += ["", "KD − hard in NLL per token (negative: the distilled student is better), paired bootstrap over "
              f"sequences with the {counted(seeds, 'seed')} pooled ({comparison['bootstrap_samples']:,} "
              "resamples):", ""]
    for prefix, split in (("validation_", "validation"), ("", "test")):
        lines.append(f"- {split}: {comparison[prefix + 'kd_minus_hard_nll']:+.4f} "
                     f"(95 % interval {comparison[prefix + 'kd_minus_hard_nll_ci_low']:+.4f} to "
                     f"{comparison[prefix + 'kd_minus_hard_nll_ci_high']:+.4f}); perplexity ratio KD / hard "
                     f"{comparison[prefix + 'kd_over_hard_perplexity']:.4f}; gap to the teacher closed "
                     f"{_gap(comparison[prefix + 'gap_closure'])}")
    caveat = budget_caveat(train, selections, (params.get("kd") or {}).get("method", "kd"))
    if caveat:
        lines += ["", caveat]
    if speed:
        lines += ["", "## Speed", "", "| model | tokens/s (scoring; median of the timed passes) | timed passes "
                  "| ms per generated token |", "|---|---|---|---|"]
        lines += [f"| {name} | {row['tokens_per_s']:,.0f} | {row.get('repeats', '—')} | "
                  f"{row['ms_per_generated_token']:.2f} |" for name, row in speed.items()]
    prompted = bool(prompt_source(meta))
    lines += ["", "## Greedy continuations", "",
              "The first validation prompts; each model answers greedily, up to its end-of-text token." if prompted
              else "The first validation sequences, cut after a few tokens; each model continues greedily.", ""]
    for entry in continuations:
        lines += [f"**Prompt:** `{_one_line(entry['prompt'])}` (the reference "
                  f"{'response' if prompted else 'text goes on'}: `{_one_line(entry['reference'])}`)",
                  "", "| model | continuation |", "|---|---|"]
        lines += [f"| {name} | `{_one_line(text)}` |" for name, text in entry.items()
                  if name not in ("prompt", "reference")]
        lines.append("")
    lines += ["## Figures", ""] + [f"![{png}](plots/{png})" for png in pngs]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return text.replace("\n", "⏎").replace("|", "\\|").replace("`", "'")


def _selection_text(train: dict, selections: dict[str, list[dict]]) -> str:
    if train["select"] == "best":
        rule = (f"`train.select: best`: each student at its lowest validation NLL per token over the evaluations "
                f"every {train['eval_steps']} steps")
    else:
        rule = f"`train.select: last`: each student at step {train['max_steps']:,}"
    picked = [kind + ": steps " + ", ".join(f"{r['step']:,}" for r in records)
              for kind, records in selections.items() if records]
    return rule + ("; picked " + "; ".join(picked) if picked else "")


def lm_summary_lines(metrics: dict) -> str:
    """What the evaluate stage prints of a language-model run: each model's perplexities (and its test answers'
    scores where there are prompts), then KD − hard on validation with its interval and the gap closed."""
    lines = []
    for name in ("teacher", "kd", "hard"):
        block = metrics[name]
        answered = (f", test answers ROUGE-L {block['rouge_l']:.4f}, exact match {block['exact_match']:.4f}"
                    if "rouge_l" in block else "")
        lines.append(f"{name:8s} perplexity validation {block['validation_perplexity']:.3f}, test "
                     f"{block['perplexity']:.3f}{answered}")
    comparison = metrics["comparison"]
    lines.append(f"KD - hard NLL per token (validation): {comparison['validation_kd_minus_hard_nll']:+.4f} "
                 f"[{comparison['validation_kd_minus_hard_nll_ci_low']:+.4f}, "
                 f"{comparison['validation_kd_minus_hard_nll_ci_high']:+.4f}], gap closed "
                 f"{_gap(comparison['validation_gap_closure'])}")
    return "\n".join(lines)


def lm_table(metrics: dict, speed: dict | None = None) -> str:
    """The terminal summary of a language-model run (``make repro``): perplexities, KD − hard and, when this
    workspace timed them, each model's speed."""
    comparison = metrics["comparison"]
    lines = ["| | teacher | distilled | hard |", "|---|---|---|---|"]
    for prefix, split in (("validation_", "validation"), ("", "test")):
        lines.append(f"| {split} perplexity | " + " | ".join(_cell(metrics[name], prefix + "perplexity", ".3f")
                                                         for name in ("teacher", "kd", "hard")) + " |")
    lines.append(f"| parameters | {metrics['teacher']['params']:,} | {metrics['kd']['params']:,} | "
                 f"{metrics['hard']['params']:,} |")
    lines += ["", f"KD - hard NLL per token, validation {comparison['validation_kd_minus_hard_nll']:+.4f} "
              f"[{comparison['validation_kd_minus_hard_nll_ci_low']:+.4f}, "
              f"{comparison['validation_kd_minus_hard_nll_ci_high']:+.4f}], gap closed "
              f"{_gap(comparison['validation_gap_closure'])}"]
    if speed:
        lines += [""] + [f"{name}: {row['tokens_per_s']:,.0f} tokens/s scored, {row['ms_per_generated_token']:.2f} ms "
                         "per generated token" for name, row in speed.items()]
    return "\n".join(lines)
