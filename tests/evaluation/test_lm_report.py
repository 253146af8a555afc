"""The language-model report, rendered from hand-made metrics: one seed has no spread, the prompts' source (a column,
a template, conversations in a chat template), the answers' rows and the KD − hard lines as the numbers given."""
from __future__ import annotations

from distillery.evaluation.lm_report import prompt_source, render_lm_report

SPLITS = {"train": 90, "validation": 10, "test": 20}


def model_metrics(nll: float, **extra) -> dict:
    block = {}
    for prefix in ("validation_", ""):
        block.update({prefix + "perplexity": 4 * nll, prefix + "nll": nll, prefix + "next_token_accuracy": 0.5})
    return {**block, "params": 1000, **extra}


def metrics(seeds: int) -> dict:
    comparison = {"responses": 20, "bootstrap_samples": 200}
    for prefix in ("validation_", ""):
        comparison.update({prefix + "kd_minus_hard_nll": -0.25, prefix + "kd_minus_hard_nll_ci_low": -0.5,
                           prefix + "kd_minus_hard_nll_ci_high": -0.125, prefix + "kd_over_hard_perplexity": 0.75,
                           prefix + "gap_closure": 0.5})
    for key in ("rouge_l", "exact_match"):
        comparison.update({f"kd_minus_hard_{key}": 0.125, f"kd_minus_hard_{key}_ci_low": -0.0625,
                           f"kd_minus_hard_{key}_ci_high": 0.25})
    student = {"seeds": seeds, "perplexity_std": 0.125, "rouge_l_std": 0.0625}
    return {"teacher": model_metrics(0.5, rouge_l=0.75, exact_match=0.5),
            "kd": model_metrics(0.75, rouge_l=0.625, exact_match=0.375, **student),
            "hard": model_metrics(1.0, rouge_l=0.5, exact_match=0.25, **student), "comparison": comparison}


META = {"source": "file:chats.jsonl", "sizes": SPLITS, "tokens": {"train": 900}, "target_tokens": {"train": 180},
        "tokenizer": "bpe", "vocab_size": 300, "packing": "truncate", "max_length": 64,
        "tokens_cut": {"train": 0, "validation": 0, "test": 0}, "long_prompts": {"train": 2, "validation": 0, "test": 1},
        "prompt_column": None, "prompt_template": None, "messages_column": "messages",
        "chat_template": "{{ messages }}", "end_of_turn": "</s>"}


def render(seeds: int, meta: dict = META) -> str:
    params = {"train": {"seeds": list(range(seeds)), "max_steps": 100, "select": "best", "eval_steps": 10}}
    return render_lm_report(params, meta, metrics(seeds), [], ["perplexity.png"], {"kd": [], "hard": []}, "`kd`")


def test_one_seed_shows_its_figures_without_a_spread():
    text = render(1)
    assert "Students: one seed's figures (no spread); validation chose every checkpoint" in text
    assert "| ROUGE-L F1 | 0.7500 | 0.6250 | 0.5000 |" in text  # no ± for one seed
    assert "paired bootstrap over prompts with the 1 seed pooled:" in text
    assert "- ROUGE-L F1: +0.1250 (95 % interval -0.0625 to +0.2500)" in text
    assert "- validation: -0.2500 (95 % interval -0.5000 to -0.1250); perplexity ratio KD / hard 0.7500; gap to " \
           "the teacher closed 0.50" in text
    three = render(3)
    assert "Students: mean ± sample std over 3 seeds;" in three and "with the 3 seeds pooled" in three
    assert "| ROUGE-L F1 | 0.7500 | 0.6250 ± 0.0625 | 0.5000 ± 0.0625 |" in three


def test_the_setting_names_where_the_prompts_come_from():
    assert ("| prompts | the conversations of column `messages` (the last message the response), written with a chat "
            "template, its end of turn `</s>` cut from the answers scored: the models learn and are scored on the "
            "responses alone (180 training target tokens); rows whose prompt fills 64 tokens, dropped: train 2, "
            "validation 0, test 1 |") in render(1)
    assert prompt_source({**META, "chat_turns": "every"}).startswith(
        "the conversations of column `messages` (every assistant message a response), written with a chat template")
    plain = {**META, "messages_column": None, "chat_template": None, "end_of_turn": ""}
    assert prompt_source(plain) is None and "| prompts |" not in render(1, plain)
    assert prompt_source({**plain, "prompt_column": "q"}) == "column `q`"
    assert prompt_source({**plain, "prompt_template": "Q: {q}\nA:"}) == "the template `Q: {q}⏎A:`"
    assert prompt_source({**plain, "prompt_column": "q", "chat_template": "x", "end_of_turn": ""}) == \
        "column `q`, written with a chat template"



def test_a_weak_teacher_many_dropped_rows_and_students_ended_by_the_ceiling_are_warned_about():
    weak = metrics(1)
    for name, perplexity in (("teacher", 5.864), ("kd", 5.234), ("hard", 4.830)):  # a helper's corpus, validation
        weak[name]["validation_perplexity"] = perplexity
    weak["comparison"]["validation_gap_closure"] = None  # lm_metrics.gap_closure: no gap to close
    meta = {**META, "long_prompts": {"train": 342, "validation": 55, "test": 113}, "empty_rows": {"train": 1},
            "prompts_also_in_train": {"validation": 0, "test": 12}}
    ended = {"kd": [{"step": 100, "last_step": 100}], "hard": [{"step": 100, "last_step": 100}]}
    params = {"train": {"seeds": [0], "max_steps": 100, "select": "best", "eval_steps": 10}, "kd": {"method": "gkd"}}
    text = render_lm_report(params, meta, weak, [], [], ended, "`gkd`")
    first, second = [line for line in text.splitlines() if line.startswith("> **Warning.**")]
    assert first == ("> **Warning.** prepare dropped rows: train 343 of 433 (79%), validation 55 of 65 (85%), test "
                     "113 of 133 (85%), whose prompt fills `data.max_length` = 64 tokens or whose text is empty. Every "
                     "score here is of the rows left, which need not be like the rest: raise `data.max_length` (or "
                     "fix the empty rows).")
    assert second.startswith("> **Warning.** The teacher is not better than the hard-label students on validation: "
                             "perplexity 5.864 against their mean 4.830.")
    assert "gap to the teacher closed — (the teacher is no better than the hard student)" in text
    assert "**Budget.** 1 of 1 distilled and 1 of 1 hard-label students peaked at their last evaluation" in text
    assert "the gap may be `gkd`'s head start" in text
    assert "training tokens; 12 of the 20 test rows repeat a train row's prompt word for word |" in text
    assert "Warning" not in render(1) and "Budget" not in render(1)  # a better teacher, students peaked inside


def test_the_stage_summary_of_a_teacher_no_better_than_the_students_has_no_gap():
    """evaluate printed `gap closed {None:.2f}` and crashed, after writing metrics.json, when the teacher was no
    better than the hard students (the gap is not computed then)."""
    from distillery.evaluation.lm_report import lm_summary_lines

    weak = metrics(2)
    weak["comparison"]["validation_gap_closure"] = None
    lines = lm_summary_lines(weak).splitlines()
    assert lines[0] == ("teacher  perplexity validation 2.000, test 2.000, test answers ROUGE-L 0.7500, exact match "
                        "0.5000")
    assert lines[-1] == ("KD - hard NLL per token (validation): -0.2500 [-0.5000, -0.1250], gap closed — (the teacher "
                         "is no better than the hard student)")
    assert lm_summary_lines(metrics(2)).endswith("gap closed 0.50")


def test_a_max_length_that_cuts_many_tokens_is_warned_about():
    """data.max_length 2 cut 13,323 of 13,901 train tokens with no word in the report; a prompt corpus's cut
    references were scored as they were."""
    from distillery.evaluation.lm_report import cut_tokens_warning

    plain = {**META, "messages_column": None, "chat_template": None, "packing": "truncate",
             "tokens": {"train": 578, "validation": 90, "test": 100}, "tokens_cut": {"train": 13323, "test": 2}}
    assert cut_tokens_warning(plain) == (
        "`data.max_length` = 64 cut train 13,323 of 13,901 tokens (96%), test 2 of 102 tokens (2%): the models learn and "
        "are scored on the rows' beginnings only. Raise `data.max_length` (at most the models' positions), or pack "
        "the rows (`data.packing: pack`).")
    chats = {**plain, "messages_column": "messages", "chat_template": "{{ messages }}"}
    assert "The test answers are scored against references cut the same way. Raise `data.max_length` (at most the " \
           "models' positions)." in cut_tokens_warning(chats)
    assert cut_tokens_warning({**plain, "tokens_cut": {"train": 5}}) is None  # under 5 %
    assert cut_tokens_warning({**plain, "packing": "pack"}) is None  # packing cuts nothing
    assert "cut train" in render(1, plain)
